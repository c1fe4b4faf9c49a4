/**
 * Order two keys by their UTF-8 bytes, the order S3, GCS and Azure list in. JavaScript's `<` compares
 * UTF-16 code units, which disagrees for characters above U+FFFF against U+E000–U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return byteRank(x) - byteRank(y);
  }
  return a.length - b.length;
}

/** Code units ranked as their UTF-8 encodings sort: surrogates (astral characters) above all of the BMP. */
function byteRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}
