import { readFileSync } from 'node:fs';
import { request } from 'node:http';

/**
 * Reads the examples out of the seed systems' own READMEs (vendored verbatim in ./seeds), so the
 * compatibility suites run exactly what the seeds tell their users to run.
 */
export function seedText(seed: '000' | '001' | '002' | '003' | '004'): string {
  return readFileSync(new URL(`./seeds/seed-${seed}.md`, import.meta.url), 'utf8');
}

export interface CurlCall {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}

/** Every `curl` command in the text's code blocks, in order. */
export function curlCalls(text: string): CurlCall[] {
  return codeBlocks(text)
    .flatMap((block) => shellCommands(block))
    .filter((words) => words[0] === 'curl')
    .map(parseCurl);
}

/** The SQL statements of the text: ```sql blocks split on `;`, and `psql -c "..."` arguments. */
export function sqlStatements(text: string): string[] {
  const fromBlocks = [...text.matchAll(/```sql\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]
      .split(';')
      .map((s) => s.replace(/--[^\n]*/g, '').trim())
      .filter((s) => s.length > 0),
  );
  const fromPsql = [...text.matchAll(/psql [^\n]*-c "([^"]+)"/g)].map((m) => m[1].replace(/;\s*$/, ''));
  return [...fromPsql, ...fromBlocks];
}

/** The JSON code blocks of the text, parsed. */
export function jsonBlocks(text: string): unknown[] {
  return [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]) as unknown);
}

function codeBlocks(text: string): string[] {
  // Walk fence by fence: a closing fence must not be taken for the next opening one.
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.trimStart().startsWith('```')) {
      if (current === undefined) current = [];
      else {
        blocks.push(current.join('\n'));
        current = undefined;
      }
    } else current?.push(line);
  }
  return blocks;
}

function parseCurl(command: string[]): CurlCall {
  const words = command.slice(1);
  let method: string | undefined;
  let url: string | undefined;
  let body: string | undefined;
  const headers: Record<string, string> = {};
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === '-X') method = words[++i];
    else if (word === '-H') {
      const [name, ...rest] = words[++i].split(':');
      headers[name.trim().toLowerCase()] = rest.join(':').trim();
    } else if (word === '-d' || word === '--data') body = words[++i];
    else if (!word.startsWith('-')) url = word;
  }
  if (url === undefined) throw new Error(`no URL in: ${command.join(' ')}`);
  return { method: method ?? (body === undefined ? 'GET' : 'POST'), url: new URL(url), headers, body };
}

/**
 * Splits a shell script into commands and words the way a POSIX shell would for plain, '…' and
 * "…" words, `\` line continuations and `#` comments: enough for the seeds' examples.
 */
function shellCommands(script: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let current = '';
  let inWord = false;
  const endWord = () => {
    if (inWord) words.push(current);
    current = '';
    inWord = false;
  };
  for (let i = 0; i < script.length; i++) {
    const c = script[i];
    if (c === "'") {
      const end = script.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unbalanced ' in: ${script}`);
      current += script.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; script[j] !== '"'; j++) {
        if (j >= script.length) throw new Error(`unbalanced " in: ${script}`);
        if (script[j] === '\\') j++;
        current += script[j];
      }
      i = j;
      inWord = true;
    } else if (c === '\\' && script[i + 1] === '\n') {
      i++;
    } else if (c === '#' && !inWord) {
      while (i + 1 < script.length && script[i + 1] !== '\n') i++;
    } else if (c === '\n') {
      endWord();
      if (words.length > 0) commands.push(words);
      words = [];
    } else if (/\s/.test(c)) {
      endWord();
    } else {
      current += c;
      inWord = true;
    }
  }
  endWord();
  if (words.length > 0) commands.push(words);
  return commands;
}

/**
 * Sends a seed's curl call to a Tally base URL instead of the seed's host and port. Uses
 * node:http rather than fetch because seed 003 sends a JSON body with GET, which curl allows and
 * fetch refuses.
 */
export function runCurl(call: CurlCall, baseUrl: string): Promise<{ status: number; body: unknown }> {
  const target = new URL(call.url.pathname + call.url.search, baseUrl);
  return new Promise((resolve, reject) => {
    // As curl does: a body always goes with its Content-Length (node:http sends none for a GET).
    const headers =
      call.body === undefined
        ? call.headers
        : { ...call.headers, 'content-length': String(Buffer.byteLength(call.body)) };
    const req = request(target, { method: call.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON (e.g. /metrics)
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end(call.body);
  });
}
