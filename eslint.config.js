// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

/** Each outside system is spoken to by exactly one package (DESIGN.md, "one owner per outside system"). */
const owners = [
  { pkg: "spark-connect", modules: ["@grpc/*", "protobufjs", "protobufjs/*", "apache-arrow"] },
  { pkg: "db", modules: ["pg", "@prisma/*", "prisma", "*/generated/prisma/*"] },
  { pkg: "queue", modules: ["bullmq", "ioredis"] },
  { pkg: "storage", modules: ["@aws-sdk/*", "@smithy/*", "@azure/*", "@google-cloud/*"] },
];

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      ".cache/**",
      ".services/**",
      "**/generated/**",
      "coverage/**",
      "apps/cli/dist/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: {
        // Scripts run by node itself (a producer that shares no code with lakeferry) are outside the project.
        projectService: { allowDefaultProject: ["packages/*/test/fixtures/*.mjs"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  // Every source file may import no outside system; each owner package may import its own.
  ...[undefined, ...owners].map((self) => ({
    files: self ? [`packages/${self.pkg}/src/**/*.ts`] : ["packages/**/src/**/*.ts", "apps/**/src/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: owners
            .filter((owner) => owner !== self)
            .flatMap(({ pkg, modules }) =>
              modules.map((group) => ({
                group: [group],
                message: `Only packages/${pkg} may speak to this system; import @lakeferry/${pkg} instead.`,
              })),
            ),
        },
      ],
    },
  })),
  {
    files: ["**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
);
