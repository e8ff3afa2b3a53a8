#!/usr/bin/env -S node --max-semi-space-size=32 --heap-growing-percent=50
// Thin launcher: Tally is written in erasable TypeScript, which Node 24 runs directly.
// The V8 flags are src/cli/v8-flags.ts's (why: there).
import '../src/cli/main.ts';
