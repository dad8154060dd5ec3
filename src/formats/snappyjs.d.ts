// Types of snappyjs (pure-JS Snappy, CommonJS, ships no declarations): the two functions page-codecs.ts and the kdump-compressed writer use.
declare module 'snappyjs' {
  /** Decompress a raw Snappy stream; throws when its declared length exceeds maxLength or the stream is invalid. */
  export function uncompress<T extends Uint8Array>(compressed: T, maxLength?: number): T;
  /** Compress into a raw Snappy stream of the same buffer type. */
  export function compress<T extends Uint8Array>(uncompressed: T): T;
  const snappy: { uncompress: typeof uncompress; compress: typeof compress };
  export default snappy;
}
