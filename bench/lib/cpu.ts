import { readdir, readFile } from 'node:fs/promises';

/** USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux user space Tally runs on. */
const TICKS_PER_SEC = 100;

/**
 * CPU seconds (user + system) spent so far by process `pid` and every descendant (Linux /proc):
 * its own time, its reaped children's (cutime, cstime) and, recursively, its live children's.
 * A process gone meanwhile counts 0, so take the difference of two samples of a tree that lives
 * through both.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name, which may itself hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime, cutime, cstime: fields 14–17 of stat(5), 11–14 after the name.
  const own = fields.length > 14 ? fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0) : 0;
  const children = await Promise.all((await childPids(pid)).map(treeCpuSeconds));
  return own / TICKS_PER_SEC + children.reduce((a, b) => a + b, 0);
}

/** The live children of `pid`, whichever of its threads started them. */
export async function childPids(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const lists = await Promise.all(
    tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')),
  );
  return lists.flatMap((text) => text.split(/\s+/).filter(Boolean).map(Number));
}

/** The parent of `pid` (field 4 of /proc/<pid>/stat), or undefined when it is gone. */
export async function parentPid(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
}

/** The child of this process whose command line contains `marker` (e.g. the Kafka broker's JVM). */
export async function ownChild(marker: string): Promise<number | undefined> {
  for (const pid of await childPids(process.pid)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) return pid;
  }
  return undefined;
}
