#!/usr/bin/env node
// Node 20 cannot run TypeScript by itself: register tsx's loader, then run the CLI (and, through
// the same loader, any .ts spec module a user names).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
