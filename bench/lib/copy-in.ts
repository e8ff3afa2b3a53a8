import type pg from 'pg';

/**
 * COPY … FROM STDIN with node-postgres alone, for bench/copy-lab.ts: pg has no COPY API of its
 * own (pg-copy-streams adds one), but it runs any object with `submit` as a query and hands it
 * the protocol's messages. This one sends a buffer made beforehand, in one go, and resolves with
 * the number of rows copied. Not for production: it leans on pg's undocumented Connection
 * methods, which pg-copy-streams would hide.
 */
export function copyIn(client: pg.ClientBase, text: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    client.query(new CopyIn(text, data, resolve, reject));
  });
}

/** The methods of pg's Connection a COPY FROM needs; @types/pg declares only `query`. */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/** CopyData messages of at most this many bytes, as psql sends them. */
const CHUNK = 64 * 1024;

class CopyIn implements pg.Submittable {
  #rows = 0;
  readonly #text: string;
  readonly #data: Buffer;
  readonly #resolve: (rows: number) => void;
  readonly #reject: (err: Error) => void;

  constructor(text: string, data: Buffer, resolve: (rows: number) => void, reject: (err: Error) => void) {
    this.#text = text;
    this.#data = data;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  submit(connection: pg.Connection): void {
    (connection as unknown as CopyConnection).query(this.#text);
  }

  handleCopyInResponse(connection: CopyConnection): void {
    for (let at = 0; at < this.#data.length; at += CHUNK)
      connection.sendCopyFromChunk(this.#data.subarray(at, at + CHUNK));
    connection.endCopyFrom();
  }

  handleCommandComplete(msg: { text: string }): void {
    this.#rows = Number(msg.text.split(' ')[1]);
  }

  // TRICKY: after an error pg drops the query at once and never calls handleReadyForQuery on it.
  handleError(err: Error): void {
    this.#reject(err);
  }

  handleReadyForQuery(): void {
    this.#resolve(this.#rows);
  }
}

/** What one row's fields are written with, in either COPY format. */
export interface CopyRows {
  row(fields: number): void;
  text(value: string | null): void;
  int(value: number): void;
  bool(value: boolean): void;
  /** A timestamptz from epoch milliseconds. */
  time(ms: number): void;
  /** A jsonb from its text. */
  json(value: string | null): void;
  /** The whole COPY data, trailer included. */
  end(): Buffer;
}

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH_US = 946_684_800_000_000;
const HEADER = Buffer.from('PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1');

/** COPY's binary format (PostgreSQL docs, COPY, "Binary Format"). */
export class BinaryCopyRows implements CopyRows {
  #buf = Buffer.allocUnsafe(1 << 20);
  #at = 0;

  constructor() {
    this.#at = HEADER.copy(this.#buf, 0);
  }

  row(fields: number): void {
    this.#room(2);
    this.#at = this.#buf.writeInt16BE(fields, this.#at);
  }

  text(value: string | null): void {
    if (value === null) return this.#null();
    // At most 3 bytes of UTF-8 per UTF-16 unit; the length is written once the bytes are.
    this.#room(4 + 3 * value.length);
    const n = this.#buf.write(value, this.#at + 4, 'utf8');
    this.#buf.writeInt32BE(n, this.#at);
    this.#at += 4 + n;
  }

  int(value: number): void {
    this.#room(8);
    this.#at = this.#buf.writeInt32BE(4, this.#at);
    this.#at = this.#buf.writeInt32BE(value, this.#at);
  }

  bool(value: boolean): void {
    this.#room(5);
    this.#at = this.#buf.writeInt32BE(1, this.#at);
    this.#at = this.#buf.writeUInt8(value ? 1 : 0, this.#at);
  }

  time(ms: number): void {
    // An int64 of microseconds, written as two halves: exact in a double until the year 287,000.
    const us = Math.round(ms * 1000) - PG_EPOCH_US;
    const high = Math.floor(us / 2 ** 32);
    this.#room(12);
    this.#at = this.#buf.writeInt32BE(8, this.#at);
    this.#at = this.#buf.writeInt32BE(high, this.#at);
    this.#at = this.#buf.writeUInt32BE(us - high * 2 ** 32, this.#at);
  }

  json(value: string | null): void {
    if (value === null) return this.#null();
    this.#room(5 + 3 * value.length);
    const n = this.#buf.write(value, this.#at + 5, 'utf8');
    this.#buf.writeInt32BE(n + 1, this.#at);
    this.#buf.writeUInt8(1, this.#at + 4); // jsonb's binary format version
    this.#at += 5 + n;
  }

  end(): Buffer {
    this.#room(2);
    this.#at = this.#buf.writeInt16BE(-1, this.#at);
    return this.#buf.subarray(0, this.#at);
  }

  #null(): void {
    this.#room(4);
    this.#at = this.#buf.writeInt32BE(-1, this.#at);
  }

  #room(bytes: number): void {
    if (this.#at + bytes <= this.#buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.#buf.length, this.#at + bytes));
    this.#buf.copy(bigger, 0, 0, this.#at);
    this.#buf = bigger;
  }
}

const SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** COPY's text format: tab-separated, `\N` for NULL, backslash escapes. */
export class TextCopyRows implements CopyRows {
  #lines: string[] = [];
  #line = '';
  #fields = -1; // of the row being written; -1 before the first row

  row(): void {
    if (this.#fields >= 0) this.#lines.push(this.#line);
    this.#fields = 0;
    this.#line = '';
  }

  text(value: string | null): void {
    this.#field(
      value === null ? '\\N' : SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]) : value,
    );
  }

  int(value: number): void {
    this.#field(String(value));
  }

  bool(value: boolean): void {
    this.#field(value ? 't' : 'f');
  }

  time(ms: number): void {
    this.#field(new Date(ms).toISOString());
  }

  json(value: string | null): void {
    this.text(value);
  }

  end(): Buffer {
    if (this.#fields >= 0) this.#lines.push(this.#line);
    this.#lines.push('');
    return Buffer.from(this.#lines.join('\n'), 'utf8');
  }

  #field(value: string): void {
    this.#line = this.#fields++ === 0 ? value : `${this.#line}\t${value}`;
  }
}
