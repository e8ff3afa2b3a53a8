import { BlockList, isIP } from 'node:net';

/**
 * The proxies whose `X-Forwarded-For` Tally believes (TALLY_TRUSTED_PROXIES: comma-separated
 * addresses and CIDR ranges, IPv4 or IPv6). Empty: the header is never believed.
 */
export interface TrustedProxies {
  readonly empty: boolean;
  has(address: string): boolean;
}

/** Parses TALLY_TRUSTED_PROXIES; throws an Error naming the first entry that is not an address or range. */
export function parseTrustedProxies(list: string): TrustedProxies {
  const blocks = new BlockList();
  let count = 0;
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      blocks.addAddress(address, type);
    } else {
      const bits = entry.slice(slash + 1);
      const max = family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(bits) || Number(bits) > max)
        throw new Error(`"${entry}" has a prefix length that is not 0..${max}`);
      blocks.addSubnet(address, Number(bits), type);
    }
    count++;
  }
  return {
    empty: count === 0,
    has: (address) => {
      const family = isIP(address);
      return family !== 0 && blocks.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/**
 * The address of the client a request comes from: the socket's peer, or, when that peer is a
 * trusted proxy, the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (the
 * left-most when all are). Entries to the left of that one are whatever the client claimed, so
 * they are never believed. Undefined when the address is unknown or not an IP address.
 */
export function clientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): string | undefined {
  let address = plainAddress(socketAddress);
  if (address === undefined || trusted.empty || !trusted.has(address) || forwardedFor === undefined)
    return address;
  // Several X-Forwarded-For headers count as one list, in order (RFC 9110, field lines).
  const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i].trim();
    if (entry === '') continue;
    address = plainAddress(entry);
    if (address === undefined || !trusted.has(address)) return address;
  }
  return address;
}

/**
 * `address` without the IPv4-mapped IPv6 prefix (a dual-stack socket reports `::ffff:1.2.3.4`),
 * a port (`1.2.3.4:5678`, `[::1]:80`) or an IPv6 zone; undefined when it is not an IP address.
 */
function plainAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  let a = address;
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    if (end === -1) return undefined;
    a = a.slice(1, end);
  } else if (a.indexOf(':') !== -1 && a.indexOf(':') === a.lastIndexOf(':')) {
    a = a.slice(0, a.indexOf(':')); // IPv4 with a port: IPv6 has at least two colons
  }
  const zone = a.indexOf('%');
  if (zone !== -1) a = a.slice(0, zone);
  if (a.length > 7 && a.slice(0, 7).toLowerCase() === '::ffff:' && isIP(a.slice(7)) === 4) a = a.slice(7);
  return isIP(a) === 0 ? undefined : a;
}

const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local
  ['172.16.0.0', 12], // private
  ['192.168.0.0', 16], // private
] as const)
  NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 127], // unspecified and loopback
  ['fc00::', 7], // unique local (RFC 4193)
  ['fe80::', 10], // link-local
] as const)
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');

/** True for an address that can have a country: not private, loopback, link-local or CGNAT. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
