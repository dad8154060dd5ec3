// The audit's per-pfn classes and their severities (ARCHITECTURE.md "Classification"), and the codes the
// main thread hands to workers for toolstack leaves that have no page. Numeric codes cross the worker boundary.


/** Per-pfn classes (ARCHITECTURE.md "Classification"). Numeric codes cross the worker boundary. */
export const PfnClass = {
  RAM: 0,
  IDENTITY: 1,
  MISSING: 2,
  FOREIGN: 3,
  UNCOVERED: 4,
  LOST: 5,
  MISMATCH: 6,
  STALE: 7,
  UNREADABLE: 8,
} as const;

export type PfnClassCode = (typeof PfnClass)[keyof typeof PfnClass];

export const PFN_CLASS_NAMES = [
  'ram',
  'identity',
  'missing',
  'foreign',
  'uncovered',
  'lost',
  'mismatch',
  'stale',
  'unreadable',
] as const;

export type PfnClassName = (typeof PFN_CLASS_NAMES)[number];

export type Severity = 'ok' | 'benign' | 'fatal' | 'warning' | 'error';

export const CLASS_SEVERITY: Record<PfnClassName, Severity> = {
  ram: 'ok',
  identity: 'benign',
  missing: 'benign',
  foreign: 'benign',
  uncovered: 'fatal',
  lost: 'fatal',
  mismatch: 'fatal',
  stale: 'warning',
  unreadable: 'error',
};

/** Toolstack leaf codes the main thread hands to workers in place of a file offset. */
export const ToolLeaf = {
  /** pfn beyond the toolstack's bound (max_pfn) or the walk failed */
  BEYOND: -1,
  /** the top/mid entry leads to the guest's shared p2m_missing page */
  SHARED_MISSING: -2,
  /** the frame is not in the image */
  ABSENT: -3,
} as const;

/** A run of pfns of one class: [start, end). */
export interface ClassRange {
  start: number;
  end: number;
  cls: PfnClassName;
}
