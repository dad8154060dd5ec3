// A private Redis server for a test file: Debian's redis-server (installed by .ci/run) on a free loopback
// port, in its own temp dir, with no RDB snapshots (`--save ''`) and, when asked, the append-only file on
// (`appendfsync always`: every write on disk before the reply) so a restart keeps every job. Started and
// stopped by the test; `restart` stops it (SIGTERM: Redis flushes the AOF and exits) and starts it again
// on the same port and dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/** A TCP port nothing listens on at the moment (the kernel's pick on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function redisServerBinary(): string {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const bin = r.stdout.trim();
  if (r.status !== 0 || bin === '') throw new Error("redis-server not found: install Debian's redis-server package (.ci/run does)");
  return bin;
}

/** Start redis-server and resolve once it accepts connections (its "Ready to accept connections" line). */
function launch(bin: string, port: number, dir: string, persist: boolean): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--logfile', '', '--maxmemory-policy', 'noeviction'];
  args.push(...(persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
  const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (d: Buffer): void => {
      log += d.toString();
      if (/Ready to accept connections/.test(log)) {
        p.stdout!.off('data', onData);
        p.stdout!.resume(); // keep draining
        resolve(p);
      }
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    p.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${log}`)));
  });
}

function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}

export async function startRedis(opts: { persist?: boolean } = {}): Promise<RedisServer> {
  const bin = redisServerBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-redis-'));
  const port = await freePort();
  let proc = await launch(bin, port, dir, Boolean(opts.persist));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    async stop() {
      await stopProcess(proc);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopProcess(proc);
      proc = await launch(bin, port, dir, Boolean(opts.persist));
    },
  };
}
