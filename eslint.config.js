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

/** The lakeferry packages each package may import: the layers below it (core at the bottom). */
const packageLayers = {
  core: [],
  "app-kit": ["core"],
  db: ["core"],
  queue: ["core"],
  storage: ["core"],
  "spark-connect": ["core"],
  "fault-proxy": ["core"],
  iceberg: ["core", "spark-connect"],
  pipeline: ["core", "db", "queue", "storage", "spark-connect", "iceberg"],
  metrics: ["core", "app-kit", "db", "queue", "pipeline"],
};
const packages = Object.keys(packageLayers);
/** Apps import packages; the CLI also imports the apps it launches (`lakeferry worker`, `discoverer`, `api`). */
const layers = {
  ...Object.fromEntries(Object.entries(packageLayers).map(([pkg, allowed]) => [`packages/${pkg}`, allowed])),
  "apps/worker": packages,
  "apps/discoverer": packages,
  "apps/api": packages,
  "apps/cli": [...packages, "worker-app", "discoverer-app", "api"],
};

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
  // Every source file may import no outside system (each owner package may import its own), and only the
  // lakeferry packages below its own layer.
  ...Object.entries(layers).map(([dir, allowed]) => {
    const self = owners.find((owner) => `packages/${owner.pkg}` === dir);
    return {
      files: [`${dir}/src/**/*.ts`],
      rules: {
        "no-restricted-imports": [
          "error",
          {
            patterns: [
              ...owners
                .filter((owner) => owner !== self)
                .flatMap(({ pkg, modules }) =>
                  modules.map((group) => ({
                    group: [group],
                    message: `Only packages/${pkg} may speak to this system; import @lakeferry/${pkg} instead.`,
                  })),
                ),
              {
                group: ["@lakeferry/*", ...allowed.map((name) => `!@lakeferry/${name}`)],
                message: dir.startsWith("apps/")
                  ? "An app imports packages, not other apps (only the CLI, which launches them, imports apps)."
                  : `${dir} may import only the layers below it: ${allowed.join(", ") || "none"}.`,
              },
            ],
          },
        ],
      },
    };
  }),
  {
    files: ["**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
);
