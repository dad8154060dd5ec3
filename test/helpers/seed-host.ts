// The host map of the seed case (issue 2, linux-p2m.md §7) in Xen's old form (end exclusive), shared by the
// input-parser tests; corpora/scenarios/hosts/seed-host.txt holds the same lines.
export const SEED_HOST_LINES = [
  '(XEN)  0000000000000000 - 000000000009fc00 (usable)',
  '(XEN)  000000000009fc00 - 00000000000a0000 (reserved)',
  '(XEN)  00000000000f0000 - 0000000000100000 (reserved)',
  '(XEN)  0000000000100000 - 000000007ffdf000 (usable)',
  '(XEN)  000000007ffdf000 - 0000000080000000 (reserved)',
  '(XEN)  00000000b0000000 - 00000000c0000000 (reserved)',
  '(XEN)  00000000feffc000 - 00000000ff000000 (reserved)',
  '(XEN)  00000000fffc0000 - 0000000100000000 (reserved)',
  '(XEN)  0000000100000000 - 0000000180000000 (usable)',
];
