#!/usr/bin/env python3
# The pfns an `xl dump-core` file holds, from its .xen_p2m section ({u64 pfn, u64 gmfn} per page,
# xen-project/xen docs/misc/dump-core-format.txt), found through the ELF64 section headers and .shstrtab.
# Written apart from p2m-audit's reader on purpose: the integration test compares the two. Prints runs
# "0xSTART-0xEND" (inclusive) of pfns present, padding entries {~0, ~0} left out.
import struct
import sys

with open(sys.argv[1], 'rb') as f:
    ehdr = f.read(64)
    assert ehdr[:4] == b'\x7fELF' and ehdr[4] == 2, 'not an ELF64 file'
    shoff, = struct.unpack_from('<Q', ehdr, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', ehdr, 0x3a)
    f.seek(shoff)
    shdrs = [struct.unpack('<IIQQQQIIQQ', f.read(shentsize)) for _ in range(shnum)]
    strtab = shdrs[shstrndx]
    f.seek(strtab[4])
    names = f.read(strtab[5])
    def name(sh):
        return names[sh[0]:names.index(b'\0', sh[0])].decode()
    p2m = [sh for sh in shdrs if name(sh) == '.xen_p2m'][0]
    f.seek(p2m[4])
    data = f.read(p2m[5])
pfns = sorted(pfn for pfn, gmfn in struct.iter_unpack('<QQ', data) if not (pfn == 2**64 - 1 and gmfn == 2**64 - 1))
runs = []
for p in pfns:
    if runs and runs[-1][1] + 1 == p:
        runs[-1][1] = p
    else:
        runs.append([p, p])
print(f'# {len(pfns)} pfns in .xen_p2m of {sys.argv[1]}')
for a, b in runs:
    print(f'0x{a:x}-0x{b:x}')
