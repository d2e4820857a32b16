/** Every subcommand, in the order `mamba-scope help` lists them. */
import type { Command } from '../command';
import { inspect } from './inspect';
import { runBlock } from './runBlock';
import { compare } from './compare';
import { rescan } from './rescan';
import { forgotten } from './forgotten';
import { effect } from './effect';
import { sweep } from './sweep';

export const COMMANDS: readonly Command[] = [inspect, runBlock, compare, rescan, forgotten, effect, sweep];
