// One session with the hypervisor: the addon loaded, the xenctrl/foreign-memory handles open, domains named
// by id or by their xenstore name (/local/domain/ID/name, which xl writes), a domain opened (optionally
// paused) for a consistent read, and the list of domains for `scan --domains all`.
import { InputError } from '../common/errors.js';
import { guestType, domainLabel, openDomain, type LiveDomainImage } from '../formats/live-domain.js';
import { loadXenLive, openXenHandle, liveError, type XenDomainInfo, type XenHandle, type XenLiveAddon } from '../formats/xenlive-addon.js';
import type { SymbolTable } from '../formats/symbols.js';
import { readConsistently, withPause, type ConsistentReadOptions } from './consistent-read.js';
import { symbolsForGuest } from './kernel-version.js';

/** How long a paused guest is let run between attempts when it was paused in the middle of a p2m update. */
const UNPAUSED_GAP_MS = 20;

export interface DomainTarget {
  domid: number;
  name: string | null;
  info: XenDomainInfo;
}

export interface ReadOptions extends ConsistentReadOptions {
  pause?: boolean;
  /** told when the domain has been paused (--stats prints it) */
  onPaused?: (label: string) => void;
  symbols?: SymbolTable;
  /** a directory of System.map-VERSION files, chosen by the guest's linux_banner */
  systemMapDir?: string;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class DomainSession {
  private constructor(
    readonly addon: XenLiveAddon,
    readonly handle: XenHandle,
  ) {}

  /** Load the addon and open the handles (one-line InputErrors for what is missing). */
  static open(): DomainSession {
    const addon = loadXenLive();
    return new DomainSession(addon, openXenHandle(addon));
  }

  close(): void {
    this.addon.close(this.handle);
  }

  nameOf(domid: number): string | null {
    return this.addon.xsRead(this.handle, `/local/domain/${domid}/name`);
  }

  list(): DomainTarget[] {
    let infos: XenDomainInfo[];
    try {
      infos = this.addon.listDomains(this.handle);
    } catch (e) {
      throw liveError('listing domains', e);
    }
    return infos.map((info) => ({ domid: info.domid, name: this.nameOf(info.domid), info }));
  }

  /** A domain by id (digits) or by name. */
  resolve(target: string): DomainTarget {
    if (/^\d+$/.test(target)) {
      const domid = Number(target);
      let info: XenDomainInfo;
      try {
        info = this.addon.domainInfo(this.handle, domid);
      } catch (e) {
        throw liveError(domainLabel(domid, null), e);
      }
      return { domid, name: this.nameOf(domid), info };
    }
    const hit = this.list().filter((d) => d.name === target);
    if (hit.length === 0) throw new InputError(`domain ${target}: no such domain (no domain has that name in xenstore)`);
    if (hit.length > 1) throw new InputError(`domain ${target}: ${hit.length} domains have that name (ids ${hit.map((d) => d.domid).join(', ')}); give the id`);
    return hit[0]!;
  }

  /** Open, read consistently (paused or not) and close: the value `read` returned and the attempts used. */
  read<T>(t: DomainTarget, read: (img: LiveDomainImage) => T, o: ReadOptions = {}): { value: T; attempts: number; img: LiveDomainImage } {
    let symbols = o.symbols;
    const open = (): LiveDomainImage => {
      const img = openDomain(this.addon, this.handle, t.domid, { name: t.name, symbols });
      if (symbols || !o.systemMapDir) return img;
      symbols = symbolsForGuest(img, o.systemMapDir, img.label).symbols;
      img.close();
      return openDomain(this.addon, this.handle, t.domid, { name: t.name, symbols });
    };
    const label = domainLabel(t.domid, t.name);
    if (!o.pause) return readConsistently(open, read, o);
    let held = false; // unpause only what this read paused, exactly once
    const pauser = {
      pause: () => {
        try {
          this.addon.pause(this.handle, t.domid);
        } catch (e) {
          throw liveError(label, e);
        }
        held = true;
        o.onPaused?.(label);
      },
      unpause: () => {
        if (!held) return;
        held = false;
        this.addon.unpause(this.handle, t.domid);
      },
    };
    // paused in the middle of a p2m update: let it run a moment, then pause again
    const between = (): void => {
      pauser.unpause();
      sleepSync(UNPAUSED_GAP_MS);
      pauser.pause();
    };
    return withPause(pauser, () => readConsistently(open, read, { ...o, between }));
  }
}

/** Why a domain is skipped by `scan --domains all`, or null when it is audited. */
export function skipReason(d: DomainTarget, selfDomid = 0): string | null {
  const type = guestType(d.info);
  if (type !== 'PV') return `${type} guest: no PV p2m`;
  if (d.domid === selfDomid) return "this dom0: Xen refuses a domain mapping its own frames as foreign";
  if (d.info.dying) return 'dying';
  if (d.info.shutdown) return 'shut down';
  return null;
}
