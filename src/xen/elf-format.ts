// ELF64 constants (System V gABI, <elf.h>): identification bytes, header, section and program header field
// offsets and sizes, note header layout. Data only; shared by every ELF reader and writer.

// ---- ELF (System V gABI; <elf.h>) ----------------------------------------------------------------
export const ELFMAG: Buffer = Buffer.from([0x7f, 0x45, 0x4c, 0x46]); // "\x7fELF"
export const EI_CLASS = 4;
export const EI_DATA = 5;
export const EI_VERSION = 6;
export const EI_OSABI = 7;
export const EI_ABIVERSION = 8;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;
export const EV_CURRENT = 1;
export const ELFOSABI_SYSV = 0;
export const ET_NONE = 0;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_STRTAB = 3;
export const SHT_NOTE = 7;
export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
/** p_flags bits. */
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
/** e_phnum escape (extended numbering): the real count is section header 0's sh_info. */
export const PN_XNUM = 0xffff;
/** sizeof(Elf64_Ehdr), sizeof(Elf64_Shdr), sizeof(Elf64_Phdr). */
export const ELF64_EHDR_SIZE = 64;
export const ELF64_SHDR_SIZE = 64;
export const ELF64_PHDR_SIZE = 56;
/** Elf64_Ehdr field offsets. */
export const E_TYPE = 16;
export const E_MACHINE = 18;
export const E_VERSION = 20;
export const E_ENTRY = 24;
export const E_PHOFF = 32;
export const E_SHOFF = 40;
export const E_FLAGS = 48;
export const E_EHSIZE = 52;
export const E_PHENTSIZE = 54;
export const E_PHNUM = 56;
export const E_SHENTSIZE = 58;
export const E_SHNUM = 60;
export const E_SHSTRNDX = 62;
/** Elf64_Shdr field offsets. */
export const SH_NAME = 0;
export const SH_TYPE = 4;
export const SH_FLAGS = 8;
export const SH_ADDR = 16;
export const SH_OFFSET = 24;
export const SH_SIZE = 32;
export const SH_LINK = 40;
export const SH_INFO = 44;
export const SH_ADDRALIGN = 48;
export const SH_ENTSIZE = 56;
/** Elf64_Phdr field offsets. */
export const P_TYPE = 0;
export const P_FLAGS = 4;
export const P_OFFSET = 8;
export const P_VADDR = 16;
export const P_PADDR = 24;
export const P_FILESZ = 32;
export const P_MEMSZ = 40;
export const P_ALIGN = 48;
/** Elf64_Nhdr: namesz, descsz, type (u32 each); name and descriptor padded to 4 bytes. */
export const NHDR_SIZE = 12;
export const N_NAMESZ = 0;
export const N_DESCSZ = 4;
export const N_TYPE = 8;
export const NOTE_ALIGN = 4;
