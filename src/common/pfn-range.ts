// A half-open range of pseudo-physical frame numbers, the unit every layer speaks in.

/** A half-open pfn range [start, end). */
export interface PfnRange {
  start: number;
  end: number;
}
