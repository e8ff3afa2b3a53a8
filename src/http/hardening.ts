import type { FastifyInstance } from 'fastify';
import { TallyError } from '../errors/tally-error.ts';
import { installAuth, type AuthDeps } from '../auth/http-auth.ts';
import { registerSecurityHeaders } from './security-headers.ts';

// %00 in a path or query string decodes to NUL, which no Tally parameter may hold and
// PostgreSQL text cannot store: without this a NUL in a filter reached SQL and failed as a 500.
// Found by test/security/fuzz.integration.test.ts.
const ENCODED_NUL = /%00/i;

/**
 * The app-wide protections, registered before any route: NUL bytes in URLs refused (400),
 * @fastify/helmet available to routes that opt in (the dashboard), and, when `auth` is
 * given, API keys and rate limits (src/auth/http-auth.ts).
 */
export async function installHardening(app: FastifyInstance, auth: AuthDeps | undefined): Promise<void> {
  app.addHook('onRequest', async (request) => {
    if (ENCODED_NUL.test(request.url)) {
      throw new TallyError('TALLY_INVALID_QUERY', 'the URL contains a NUL byte (%00)');
    }
  });
  await registerSecurityHeaders(app);
  if (auth) await installAuth(app, auth);
}
