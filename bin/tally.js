#!/usr/bin/env node
// Thin launcher: Tally is written in erasable TypeScript, which Node 24 runs directly.
import '../src/cli/main.ts';
