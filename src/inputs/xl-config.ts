// xl domain configuration files as xl reads them, for the keys that shape a PV domU's memory.
// Follows Xen RELEASE-4.17.0 (RELEASE-4.14.0 has the same lexer, grammar and value readers under
// tools/libxl/): tools/libs/util/libxlu_cfg_l.l (tokens), libxlu_cfg_y.y (grammar), libxlu_cfg.c
// (xlu__cfg_set_store and "+=", xlu__cfgl_dequote, xlu_cfg_get_string/_long/_defbool/_list/_listitem),
// libxlu_pci.c (xlu_pci_parse_spec_string), tools/xl/xl_parse.c parse_config_data (type, builder, name,
// memory, maxmem, e820_host, pci) and tools/libs/light/libxl_create.c
// libxl__domain_build_info_setdefault (memory defaults). docs/spec-notes/libxl-domu.md has the details.
import { InputError } from '../common/errors.js';

// ---- constants ----------------------------------------------------------------------------------

/** libxl__domain_build_info_setdefault: max_memkb defaults to 32 * 1024 (a literal in libxl). */
const LIBXL_DEFAULT_MAX_MEMKB = 32 * 1024;
const DEFAULT_MEMORY_MIB = LIBXL_DEFAULT_MAX_MEMKB / 1024;
/**
 * xc_dom_mem_init(dom, unsigned int mem_mb) computes nr_pages = mem_mb << (20 - PAGE_SHIFT) in unsigned
 * int arithmetic, which wraps from 2^24 MiB (16 TiB) on: memory (and, for this tool, maxmem) stay below.
 */
const MEM_MB_LIMIT = 2 ** 24;
/** C's long on x86-64: xlu_cfg_get_long uses strtol. */
const LONG_MAX = 2n ** 63n - 1n;
const LONG_MIN = -(2n ** 63n);
/** libxlu_pci.c parse_bdf bounds. */
const PCI_DOMAIN_MAX = 0xffff;
const PCI_BUS_MAX = 0xff;
const PCI_DEV_MAX = 0x1f;
const PCI_FUNC_MAX = 7;
/** xlu_pci_parse_spec_string: the key=value options it knows. */
const PCI_SPEC_KEYS: ReadonlySet<string> = new Set([
  'bdf',
  'vslot',
  'permissive',
  'msitranslate',
  'seize',
  'power_mgmt',
  'rdm_policy',
  'name',
]);

// ---- values and settings ------------------------------------------------------------------------

/** A value: xl keeps every atom (quoted string or bare number) as a string. */
export type XlValue = { kind: 'string'; text: string; line: number } | { kind: 'list'; items: XlValue[]; line: number };

/** One setting as stored: the last assignment to a name wins; "+=" has already been concatenated. */
export interface XlSetting {
  name: string;
  op: '=' | '+=';
  value: XlValue;
  /** line of the key */
  line: number;
}

/** What xl_parse.c + libxl's defaults make of the memory-relevant keys of a PV domU config. */
export interface XlConfig {
  source: string;
  name: string | null;
  /** the guest type after xl's type/builder rules; anything but PV is refused */
  type: 'pv';
  /** memory= in MiB (b_info->target_memkb / 1024), after defaults */
  memory: number;
  /** maxmem= in MiB (b_info->max_memkb / 1024), after defaults (xl: = memory when unset) */
  maxmem: number;
  /** b_info->u.pv.e820_host as xl 4.17 hands it to libxl (a non-empty pci list forces it on) */
  e820Host: boolean;
  /** e820_host= as written (null when absent) */
  e820HostSetting: boolean | null;
  /** pci= PCI_SPEC_STRINGs, as written */
  pci: string[];
  /** what xl would warn about or what defaulted */
  notes: string[];
}

// ---- lexer (libxlu_cfg_l.l) ---------------------------------------------------------------------

type TokKind = 'ident' | 'number' | 'string' | '[' | ']' | ',' | '=' | '+=' | ';' | 'newline' | 'eof';

interface Token {
  kind: TokKind;
  text: string;
  line: number;
}

const IDENT_RE = /[a-z][._0-9a-z]*/y;
const NUMBER_RE = /[0-9][0-9a-fx]*/y;
/** Flex's lexerr state swallows the rest of the word: this is the text xl quotes. */
const ERR_WORD_RE = /[^ \t\n]*/y;
/** Characters after which xl adds "Config file looks like it contains Python code". */
const PYTHON_CHARS = '+-.():';

/**
 * Bounds that keep hostile text from exhausting the stack (libxlu's bison parser itself gives up at
 * YYMAXDEPTH, 10000 stack entries; real configs nest lists two deep and no value comes near 1 MiB).
 */
export const MAX_LIST_DEPTH = 64;
export const MAX_STRING_CHARS = 1 << 20;
/** Longest piece of the input quoted back in a message. */
const MAX_NEAR_CHARS = 60;

function syntaxError(source: string, line: number, near: string, why: string): InputError {
  const cut = near.length > MAX_NEAR_CHARS ? near.slice(0, MAX_NEAR_CHARS) + '…' : near;
  const shown = near === '\n' ? '<newline>' : near === '' ? '<end of file>' : cut;
  return new InputError(`${source}:${line}: config parsing error near "${shown}": ${why}`);
}

/**
 * End (exclusive) of the quoted string opening at `at` — libxlu_cfg_l.l's \"([^\\\"\n]|\\.)*\" and its
 * single-quoted twin, scanned without a backtracking regex — or -1 when a newline or the end of the text
 * comes first. A string longer than MAX_STRING_CHARS is an error.
 */
function quotedEnd(text: string, at: number, source: string, line: number): number {
  const quote = text[at]!;
  for (let j = at + 1; j < text.length; j++) {
    if (j - at > MAX_STRING_CHARS) {
      throw syntaxError(source, line, text.slice(at, at + MAX_NEAR_CHARS), `quoted string longer than ${MAX_STRING_CHARS} characters`);
    }
    const ch = text[j]!;
    if (ch === quote) return j + 1;
    if (ch === '\n') return -1;
    if (ch === '\\') {
      if (j + 1 >= text.length || text[j + 1] === '\n') return -1;
      j++;
    }
  }
  return -1;
}

function stickyMatch(re: RegExp, text: string, at: number): string | null {
  re.lastIndex = at;
  const m = re.exec(text);
  return m ? m[0] : null;
}

/**
 * xlu__cfgl_dequote: backslash escapes \" \' \\ \a \b \f \n \r \t \v. Its numeric escapes never yield a
 * character: NUMERIC_CHAR checks and skips digits but stores nothing. "\x" skips one more character and
 * then needs more than two of at most two hex digits, so it is always an error; "\<0-7>" swallows the
 * two or three decimal digits that must follow it.
 */
function dequote(raw: string, source: string, line: number): string {
  const simple: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
  let out = '';
  for (let i = 1; i < raw.length - 1; ) {
    const c = raw[i++]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const nc = raw[i++]!;
    if (nc in simple) {
      out += simple[nc];
    } else if (nc === 'x') {
      throw syntaxError(source, line, raw, 'invalid digit after backslash hex numerical character escape in quoted string');
    } else if (nc >= '0' && nc <= '7') {
      const digits = /^[0-9]{2,3}/.exec(raw.slice(i, Math.min(i + 3, raw.length - 1)));
      if (!digits) throw syntaxError(source, line, raw, 'invalid digit after backslash octal numerical character escape in quoted string');
      i += digits[0].length;
    } else {
      throw syntaxError(source, line, raw, 'invalid character after backlash in quoted string');
    }
  }
  return out;
}

/**
 * Tokens as libxlu_cfg_l.l makes them. Two leniencies (documented in the spec notes): a "\r" before a
 * newline is taken as blank, and a "#" comment may end at the end of the file without a newline.
 */
function tokenize(text: string, source: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || (c === '\r' && (text[i + 1] === '\n' || i + 1 === text.length))) {
      i++;
      continue;
    }
    if (c === '\n' || c === '#') {
      const nl = text.indexOf('\n', i);
      tokens.push({ kind: 'newline', text: '\n', line });
      if (nl < 0) break;
      i = nl + 1;
      line++;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = quotedEnd(text, i, source, line);
      const raw = end < 0 ? null : text.slice(i, end);
      if (raw === null) {
        throw syntaxError(source, line, stickyMatch(ERR_WORD_RE, text, i) ?? c, 'lexical error (unterminated quoted string)');
      }
      tokens.push({ kind: 'string', text: dequote(raw, source, line), line });
      i += raw.length;
      continue;
    }
    const ident = stickyMatch(IDENT_RE, text, i);
    if (ident) {
      tokens.push({ kind: 'ident', text: ident, line });
      i += ident.length;
      continue;
    }
    const num = stickyMatch(NUMBER_RE, text, i);
    if (num) {
      tokens.push({ kind: 'number', text: num, line });
      i += num.length;
      continue;
    }
    if (c === '+' && text[i + 1] === '=') {
      tokens.push({ kind: '+=', text: '+=', line });
      i += 2;
      continue;
    }
    if (c === ',' || c === '[' || c === ']' || c === '=' || c === ';') {
      tokens.push({ kind: c, text: c, line });
      i++;
      continue;
    }
    const word = stickyMatch(ERR_WORD_RE, text, i) || c;
    const python = PYTHON_CHARS.includes(c)
      ? ' (the file looks like it contains Python code; arbitrary Python is no longer supported by xl)'
      : '';
    throw syntaxError(source, line, word, `lexical error${python}`);
  }
  tokens.push({ kind: 'eof', text: '', line });
  return tokens;
}

// ---- grammar (libxlu_cfg_y.y) -------------------------------------------------------------------

class Parser {
  private pos = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly source: string,
  ) {}

  private peek(): Token {
    return this.tokens[this.pos]!;
  }

  private next(): Token {
    return this.tokens[this.pos++]!;
  }

  private fail(tok: Token, expected: string): InputError {
    return syntaxError(this.source, tok.line, tok.text, `syntax error, expected ${expected}`);
  }

  /** nlok: any number of newlines. */
  private skipNewlines(): void {
    while (this.peek().kind === 'newline') this.pos++;
  }

  /** value: atom | '[' nlok valuelist ']'. */
  private value(depth = 0): XlValue {
    const tok = this.next();
    if (tok.kind === 'string' || tok.kind === 'number') return { kind: 'string', text: tok.text, line: tok.line };
    if (tok.kind !== '[') throw this.fail(tok, 'a quoted string, a number or "["');
    if (depth >= MAX_LIST_DEPTH) throw syntaxError(this.source, tok.line, tok.text, `lists nested more than ${MAX_LIST_DEPTH} deep`);
    const items: XlValue[] = [];
    this.skipNewlines();
    if (this.peek().kind === ']') {
      this.pos++;
      return { kind: 'list', items, line: tok.line };
    }
    for (;;) {
      items.push(this.value(depth + 1));
      this.skipNewlines();
      const sep = this.next();
      if (sep.kind === ']') break;
      if (sep.kind !== ',') throw this.fail(sep, '"," or "]"');
      this.skipNewlines();
      if (this.peek().kind === ']') {
        this.pos++;
        break;
      }
    }
    return { kind: 'list', items, line: tok.line };
  }

  /** file: stmts [assignment]; stmt: assignment endstmt | endstmt. */
  parse(): XlSetting[] {
    const out: XlSetting[] = [];
    for (;;) {
      const tok = this.next();
      if (tok.kind === 'eof') return out;
      if (tok.kind === 'newline' || tok.kind === ';') continue;
      if (tok.kind !== 'ident') throw this.fail(tok, 'a setting name');
      const op = this.next();
      if (op.kind !== '=' && op.kind !== '+=') throw this.fail(op, '"=" or "+="');
      const value = this.value();
      const end = this.peek();
      if (end.kind !== 'newline' && end.kind !== ';' && end.kind !== 'eof') throw this.fail(end, 'end of line or ";"');
      out.push({ name: tok.text, op: op.kind, value, line: tok.line });
    }
  }
}

/** xlu__cfg_concat_vals: "+=" appends a string to a string or a list to a list. */
function concat(prev: XlValue, add: XlValue, source: string, line: number): XlValue {
  if (prev.kind === 'string' && add.kind === 'string') return { kind: 'string', text: prev.text + add.text, line: add.line };
  if (prev.kind === 'list' && add.kind === 'list') return { kind: 'list', items: [...prev.items, ...add.items], line: add.line };
  throw new InputError(`${source}:${line}: config parsing error: can't add [list] to "string" or vice versa`);
}

/**
 * Parse xl config text into its settings by name (xlu__cfg_set_store: a later assignment replaces an
 * earlier one; "+=" concatenates with it). Syntax errors → InputError naming source:line.
 */
export function parseXlSettings(text: string, source: string): Map<string, XlSetting> {
  const settings = new Map<string, XlSetting>();
  for (const s of new Parser(tokenize(text, source), source).parse()) {
    const prev = settings.get(s.name);
    const value = s.op === '+=' && prev ? concat(prev.value, s.value, source, s.line) : s.value;
    settings.set(s.name, { ...s, value });
  }
  return settings;
}

// ---- value readers (libxlu_cfg.c) ---------------------------------------------------------------

/** strtol(s, &ep, 0) that must consume the whole string: blanks, sign, 0x-hex, 0-octal or decimal. */
function strtolWhole(s: string): bigint | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return null;
  const digits = m[2]!;
  const v = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits[0] === '0' ? BigInt('0o' + digits.slice(1)) : BigInt(digits);
  return m[1] === '-' ? -v : v;
}

class Reader {
  readonly notes: string[] = [];
  constructor(
    private readonly settings: Map<string, XlSetting>,
    private readonly source: string,
  ) {}

  where(s: XlSetting): string {
    return `${this.source}:${s.line}`;
  }

  line(name: string): number | null {
    return this.settings.get(name)?.line ?? null;
  }

  /** xlu_cfg_get_string: an atom; a list is warned about and treated as unset. */
  string(name: string): { text: string; setting: XlSetting } | null {
    const s = this.settings.get(name);
    if (!s) return null;
    if (s.value.kind !== 'string') {
      this.notes.push(`${this.where(s)}: warning: parameter \`${name}' is a list but should be a single value; xl ignores it`);
      return null;
    }
    return { text: s.value.text, setting: s };
  }

  /**
   * xlu_cfg_get_long. xl only warns about a value it cannot read and then ignores the key (falling back
   * to the default); for the keys that size the guest that silent fallback is refused here instead.
   */
  long(name: string): { value: bigint; setting: XlSetting } | null {
    const s = this.settings.get(name);
    if (!s) return null;
    const refuse = (why: string): InputError =>
      new InputError(`${this.where(s)}: ${name}: ${why} (xl would warn and ignore the setting, using the default instead)`);
    if (s.value.kind !== 'string') throw refuse('is a list but should be a single value');
    if (s.op === '+=') throw refuse(`can't use += with numbers`);
    const v = strtolWhole(s.value.text);
    if (v === null) throw refuse(`"${s.value.text}" is not a valid number (decimal, 0x-hex or 0-octal)`);
    if (v > LONG_MAX || v < LONG_MIN) throw refuse(`"${s.value.text}" could not be parsed as a number: out of range`);
    return { value: v, setting: s };
  }

  /** xlu_cfg_get_defbool: a number, true when non-zero. */
  defbool(name: string): boolean | null {
    const l = this.long(name);
    return l === null ? null : l.value !== 0n;
  }

  /** memory= / maxmem=: whole MiB, at least 1 and below 2^24. */
  mib(name: string): number | null {
    const l = this.long(name);
    if (l === null) return null;
    if (l.value < 1n || l.value >= BigInt(MEM_MB_LIMIT)) {
      throw new InputError(
        `${this.where(l.setting)}: ${name} = ${l.value}: expected a size in MiB from 1 to ${MEM_MB_LIMIT - 1} ` +
          `(xc_dom_mem_init's unsigned int arithmetic, mem_mb << 8, wraps from 16 TiB on)`,
      );
    }
    return Number(l.value);
  }

  /** xlu_cfg_get_list + xlu_cfg_get_listitem: string items, stopping at the first non-string one. */
  stringList(name: string): { items: string[]; setting: XlSetting } | null {
    const s = this.settings.get(name);
    if (!s) return null;
    if (s.value.kind !== 'list') {
      this.notes.push(`${this.where(s)}: warning: parameter \`${name}' is a single value but should be a list; xl ignores it`);
      return null;
    }
    const items: string[] = [];
    for (const v of s.value.items) {
      if (v.kind !== 'string') {
        this.notes.push(`${this.where(s)}: ${name}: item ${items.length} is a list; xl stops reading the list there`);
        break;
      }
      items.push(v.text);
    }
    return { items, setting: s };
  }
}

// ---- guest type (xl_parse.c) --------------------------------------------------------------------

type DomainType = 'pv' | 'hvm' | 'pvh';

/** strncmp(buf, word, strlen(buf)) == 0: buf is a prefix of word (the empty string matches anything). */
function isPrefixOf(buf: string, word: string): boolean {
  return word.startsWith(buf);
}

function guestType(r: Reader, source: string): 'pv' {
  let type: DomainType | null = null;
  const t = r.string('type');
  if (t) {
    // xl tries "hvm", then "pv", then "pvh", each as strncmp(buf, name, strlen(buf)).
    if (isPrefixOf(t.text, 'hvm')) type = 'hvm';
    else if (isPrefixOf(t.text, 'pv')) type = 'pv';
    else if (isPrefixOf(t.text, 'pvh')) type = 'pvh';
    else throw new InputError(`${r.where(t.setting)}: Invalid domain type ${t.text}. (xl accepts "pv", "pvh" or "hvm")`);
  }
  const b = r.string('builder');
  if (b) {
    let builderType: DomainType;
    if (isPrefixOf(b.text, 'hvm')) builderType = 'hvm';
    else if (isPrefixOf(b.text, 'generic')) builderType = 'pv';
    else throw new InputError(`${r.where(b.setting)}: Invalid domain type ${b.text}. (builder accepts "generic" or "hvm")`);
    if (type !== null && type !== builderType) {
      throw new InputError(`${r.where(b.setting)}: Contradicting "builder" and "type" options specified.`);
    }
    type = builderType;
  }
  if (type === null) {
    r.notes.push('type: not set; xl builds a PV guest by default on x86');
    return 'pv';
  }
  if (type !== 'pv') {
    const s = (b ?? t)!.setting;
    const key = b ? `builder = "${b.text}"` : `type = "${t!.text}"`;
    throw new InputError(
      `${source}:${s.line}: ${key} makes a ${type.toUpperCase()} guest; only PV guests are emulated ` +
        `(use type = "pv" for a PV domU config)`,
    );
  }
  return 'pv';
}

// ---- PCI_SPEC_STRING (libxlu_pci.c) -------------------------------------------------------------

/** parse_bdf: [DDDD:]BB:DD.F or .* — returns the length consumed, or null. */
function parseBdf(s: string): number | null {
  const m = /^(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)\.(\*|[0-9a-fA-F]+)/.exec(s);
  if (!m) return null;
  const domain = m[1] === undefined ? 0 : parseInt(m[1], 16);
  const bus = parseInt(m[2]!, 16);
  const dev = parseInt(m[3]!, 16);
  if (domain > PCI_DOMAIN_MAX || bus > PCI_BUS_MAX || dev > PCI_DEV_MAX) return null;
  if (m[4] !== '*' && parseInt(m[4]!, 16) > PCI_FUNC_MAX) return null;
  return m[0].length;
}

/** xlu_pci_parse_spec_string: positional BDF[@VSLOT] and/or key=value options; exactly one of bdf and name. */
function validPciSpec(spec: string): boolean {
  let rest = spec;
  let bdf = false;
  let name = false;
  const n = parseBdf(rest);
  if (n !== null) {
    bdf = true;
    rest = rest.slice(n);
    const vslot = /^@[0-9a-fA-F]+/.exec(rest);
    if (vslot) rest = rest.slice(vslot[0].length);
    if (rest.startsWith(',')) rest = rest.slice(1);
    else if (rest !== '') return false;
  }
  for (const item of rest === '' ? [] : rest.split(',')) {
    const kv = /^([^=]+)=(.*)$/.exec(item);
    if (!kv || !PCI_SPEC_KEYS.has(kv[1]!)) return false;
    if (kv[1] === 'bdf') {
      if (parseBdf(kv[2]!) === null) return false;
      bdf = true;
    }
    if (kv[1] === 'name') name = true;
  }
  return bdf !== name;
}

// ---- public -------------------------------------------------------------------------------------

/**
 * Parse an xl domain config (xl.cfg(5) syntax) and resolve the keys that size a PV domU the way xl's
 * parse_config_data and libxl's defaults do. Unknown keys are ignored. HVM and PVH guests are refused.
 */
export function parseXlConfig(text: string, source: string): XlConfig {
  const r = new Reader(parseXlSettings(text, source), source);
  const type = guestType(r, source);

  const nameValue = r.string('name');
  if (nameValue === null) r.notes.push('name: not set; xl refuses such a config ("Domain name must be specified.")');

  // xl_parse.c: memory= → target_memkb, maxmem= → max_memkb, then max_memkb := target_memkb when unset;
  // libxl__domain_build_info_setdefault: max_memkb := 32 MiB when still unset, target_memkb := max_memkb.
  const memorySetting = r.mib('memory');
  const maxmemSetting = r.mib('maxmem');
  let memory: number;
  let maxmem: number;
  if (memorySetting !== null) {
    memory = memorySetting;
    maxmem = maxmemSetting ?? memorySetting;
    if (maxmemSetting === null) r.notes.push(`maxmem: not set; xl uses memory (${memory} MiB)`);
  } else if (maxmemSetting !== null) {
    maxmem = maxmemSetting;
    memory = maxmemSetting;
    r.notes.push(`memory: not set; libxl uses maxmem (${maxmem} MiB)`);
  } else {
    memory = maxmem = DEFAULT_MEMORY_MIB;
    r.notes.push(`memory, maxmem: not set; libxl's default is ${DEFAULT_MEMORY_MIB} MiB`);
  }
  if (maxmem < memory) {
    r.notes.push(
      `maxmem (${maxmem} MiB) < memory (${memory} MiB): xl.cfg(5) requires maxmem >= memory; neither xl nor libxl checks it for PV`,
    );
  }

  // Order of xl 4.17 (since commit e45ad0b1b0, "xl: Fix global pci options"): e820_host is read first,
  // then a non-empty pci list of a PV guest sets e820_host to true regardless.
  const e820HostSetting = r.defbool('e820_host');
  const pciList = r.stringList('pci');
  const pci = pciList?.items ?? [];
  for (const spec of pci) {
    if (!validPciSpec(spec)) {
      throw new InputError(
        `${r.where(pciList!.setting)}: unable to parse PCI_SPEC_STRING \`${spec}' for passthrough ` +
          `(expected [DDDD:]BB:DD.F[@VSLOT][,key=value...] or bdf=/name= options, see xl-pci-configuration(5))`,
      );
    }
  }
  let e820Host = e820HostSetting ?? false;
  if (pci.length > 0) {
    if (e820HostSetting === false) {
      r.notes.push(
        `e820_host = 0 is overridden: xl 4.17 turns e820_host on for a PV guest with pci devices ` +
          `(xl 4.13 to 4.16.0 read e820_host after pci and kept 0)`,
      );
    } else if (e820HostSetting === null) {
      r.notes.push('e820_host: not set; xl turns it on because pci devices are configured');
    }
    e820Host = true;
  }
  if (r.line('vnuma') !== null) {
    r.notes.push('vnuma: not emulated (xl would set maxmem to the vnodes\' total and libxl would lay RAM out per vnode)');
  }

  return { source, name: nameValue?.text ?? null, type, memory, maxmem, e820Host, e820HostSetting, pci, notes: r.notes };
}
