// Where the fleet's queue lives: a Redis server named by a redis:// or rediss:// URL (the scheme of the
// IANA registration, https://www.iana.org/assignments/uri-schemes/prov/redis, as ioredis reads it), taken
// from --queue, else P2M_AUDIT_REDIS_URL, else REDIS_URL. Before any BullMQ object is made, a short-lived
// probe connects once (no retry, no offline queue, CONNECT_TIMEOUT_MS) and reads INFO, so an unreachable
// server, a refused password or a server older than BullMQ's recommended minimum (6.2, docs.bullmq.io
// "Going to production") is one InputError line (exit 2) within seconds — never a hang. The options BullMQ
// then gets differ by role: the CLI's short-lived clients fail fast; a worker reconnects forever (BullMQ's
// Worker requires maxRetriesPerRequest null on its blocking connection).
import { Redis, type RedisOptions } from 'ioredis';
import { InputError } from '../common/errors.js';

/** Environment variables read for the URL when --queue is not given, in this order. */
export const URL_ENV = ['P2M_AUDIT_REDIS_URL', 'REDIS_URL'] as const;
export const DEFAULT_REDIS_PORT = 6379;
/** BullMQ's recommended minimum server version (RedisConnection.recommendedMinimumVersion). */
export const MIN_REDIS_VERSION = '6.2.0';
/** Time allowed for a TCP (and TLS) connection before it is given up. */
export const CONNECT_TIMEOUT_MS = 3000;
/** A worker's reconnect delay grows by this per attempt, up to RECONNECT_MAX_MS. */
const RECONNECT_STEP_MS = 200;
const RECONNECT_MAX_MS = 5000;
/** Default key prefix: every key of a deployment starts with it (BullMQ's `prefix`). */
export const DEFAULT_PREFIX = 'p2m-audit';

/** A parsed queue address: ioredis options plus a printable form that never shows the password. */
export interface QueueAddress {
  /** redis://host:port/db without credentials, for messages */
  shown: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/** The URL to use: the option, else the first environment variable set. */
export function queueUrl(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (option) return option;
  for (const name of URL_ENV) if (env[name]) return env[name]!;
  throw new InputError(`fleet: give --queue redis://HOST:PORT (or set ${URL_ENV.join(' or ')})`);
}

/** Parse redis://[user[:password]@]host[:port][/db] (rediss:// for TLS). */
export function parseQueueUrl(url: string): QueueAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError(`--queue ${redact(url)}: expected a URL such as redis://queue-host:6379`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new InputError(`--queue ${redact(url)}: expected the redis:// or rediss:// scheme, got ${u.protocol}`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = u.port === '' ? DEFAULT_REDIS_PORT : Number(u.port);
  const dbText = u.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) throw new InputError(`--queue ${redact(url)}: the path must be a database number, got /${dbText}`);
  const db = dbText === '' ? 0 : Number(dbText);
  const tls = u.protocol === 'rediss:';
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    shown: `${u.protocol}//${shownHost}:${port}${db ? `/${db}` : ''}`,
    host,
    port,
    db,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls,
  };
}

/** The URL with its password replaced, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}

/** Who holds the connection: the CLI's short commands fail fast, a worker waits out a server restart. */
export type ConnectionRole = 'client' | 'worker';

/** The options fleet sets: ioredis's, with a retry strategy that is always a function (as BullMQ types it). */
export type FleetRedisOptions = Omit<RedisOptions, 'retryStrategy'> & { retryStrategy: (times: number) => number | null };

/** ioredis options for a role (see the header). */
export function redisOptions(a: QueueAddress, role: ConnectionRole): FleetRedisOptions {
  const base = {
    host: a.host,
    port: a.port,
    db: a.db,
    username: a.username,
    password: a.password,
    tls: a.tls ? { servername: a.host } : undefined,
    connectTimeout: CONNECT_TIMEOUT_MS,
  };
  if (role === 'worker') {
    return { ...base, maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: (n) => Math.min(n * RECONNECT_STEP_MS, RECONNECT_MAX_MS) };
  }
  return { ...base, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null };
}

/** Compare dotted versions ("7.0.15" ≥ "6.2.0"). */
export function versionAtLeast(have: string, want: string): boolean {
  const a = have.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = want.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** One INFO field ("redis_version:7.0.15" → "7.0.15"). */
export function infoField(info: string, field: string): string | null {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m ? m[1]!.trim() : null;
}

/** What the probe learnt about the server. */
export interface ServerFacts {
  version: string;
  /** maxmemory-policy; BullMQ needs noeviction (docs/fleet.md) */
  evictionPolicy: string | null;
}

function cause(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const msg = (err?.message ?? String(e)).split('\n')[0]!;
  if (err?.code && !msg.includes(err.code)) return `${err.code}: ${msg}`;
  return msg;
}

/**
 * Connect once, read INFO, disconnect. InputError (one line, exit 2) when the server cannot be reached in
 * CONNECT_TIMEOUT_MS, refuses the credentials, or is older than MIN_REDIS_VERSION.
 */
export async function probeServer(a: QueueAddress): Promise<ServerFacts> {
  const client = new Redis({ ...redisOptions(a, 'client'), lazyConnect: true });
  let lastError: unknown = null;
  client.on('error', (e) => {
    lastError = e;
  });
  try {
    try {
      await client.connect();
    } catch (e) {
      throw new InputError(`${a.shown}: cannot connect to Redis (${cause(lastError ?? e)})`);
    }
    let info: string;
    try {
      info = await client.info();
    } catch (e) {
      throw new InputError(`${a.shown}: Redis refused INFO (${cause(e)})`);
    }
    const version = infoField(info, 'redis_version');
    if (version === null) throw new InputError(`${a.shown}: the server's INFO has no redis_version; is it Redis?`);
    if (!versionAtLeast(version, MIN_REDIS_VERSION)) {
      throw new InputError(`${a.shown}: Redis ${version} is too old; BullMQ needs ${MIN_REDIS_VERSION} or later`);
    }
    return { version, evictionPolicy: infoField(info, 'maxmemory_policy') };
  } finally {
    client.disconnect();
  }
}

/** Everything a fleet command needs to reach its queue. */
export interface FleetConnection {
  address: QueueAddress;
  prefix: string;
  server: ServerFacts;
}

/** Resolve the URL, check the prefix, probe the server (see probeServer). */
export async function connectFleet(opts: { queue?: string; prefix?: string }): Promise<FleetConnection> {
  const address = parseQueueUrl(queueUrl(opts.queue));
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9_.{}-]+$/.test(prefix)) throw new InputError(`--prefix ${prefix}: expected letters, digits, '_', '-', '.', '{' or '}'`);
  const server = await probeServer(address);
  return { address, prefix, server };
}

/** The one-line warning for a server that may evict queue keys (empty when it will not). */
export function evictionWarning(c: FleetConnection): string {
  const p = c.server.evictionPolicy;
  return p === null || p === 'noeviction' ? '' : `${c.address.shown}: maxmemory-policy is ${p}; set it to noeviction or jobs may be lost (docs/fleet.md)`;
}

/** Messages of a lost or refused connection (ioredis, Node's net and tls). */
const CONNECTION_TROUBLE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|Connection is closed|Stream isn't writeable|enableOfflineQueue|NOAUTH|WRONGPASS|max retries|connect ETIMEDOUT/i;

/** A Redis failure in the middle of a command as a one-line InputError (exit 2); anything else unchanged. */
export function asConnectionError(e: unknown, c: { address: QueueAddress }): unknown {
  if (e instanceof InputError) return e;
  const msg = (e as Error)?.message ?? String(e);
  return CONNECTION_TROUBLE.test(msg) ? new InputError(`${c.address.shown}: lost the connection to Redis (${cause(e)})`) : e;
}

/** A connected short-lived client (the CLI's role): its commands fail at once if the server goes away. */
export async function openClient(c: { address: QueueAddress }): Promise<Redis> {
  const redis = new Redis({ ...redisOptions(c.address, 'client'), lazyConnect: true });
  redis.on('error', () => {}); // every command's own rejection reports it
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw new InputError(`${c.address.shown}: cannot connect to Redis (${cause(e)})`);
  }
  return redis;
}
