// One ELF note as the gABI lays it out ("Note Section"): namesz, descsz, type, the name with its NUL padded
// to 4 bytes, the descriptor padded to 4 — written by hand for tests, independently of src/emulate's writers.
export function elfNote(name: string, type: number, desc: Buffer): Buffer {
  const n = Buffer.from(name + '\0', 'latin1');
  const b = Buffer.alloc(12 + Math.ceil(n.length / 4) * 4 + Math.ceil(desc.length / 4) * 4);
  b.writeUInt32LE(n.length, 0);
  b.writeUInt32LE(desc.length, 4);
  b.writeUInt32LE(type, 8);
  n.copy(b, 12);
  desc.copy(b, 12 + Math.ceil(n.length / 4) * 4);
  return b;
}
