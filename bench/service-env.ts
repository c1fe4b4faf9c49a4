/** A variable `scripts/services.sh env` exports; a benchmark cannot run without it. */
export function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run: eval "$(bash scripts/services.sh env)"`);
  return value;
}
