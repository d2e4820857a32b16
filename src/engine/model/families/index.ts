/** The hybrid families, by transformers' model_type: each reads its config.json into a HybridConfig. */
import type { HybridConfig } from '../config';
import type { ConfigFields } from '../configFields';
import { bambaConfig, graniteHybridConfig } from './bamba';
import { falconH1Config } from './falconH1';
import { jambaConfig } from './jamba';
import { nemotronHConfig } from './nemotronH';
import { zamba2Config } from './zamba2';

export const HYBRID_FAMILIES: Readonly<Record<string, (f: ConfigFields, source: string) => HybridConfig>> = {
  jamba: jambaConfig,
  bamba: bambaConfig,
  granitemoehybrid: graniteHybridConfig,
  nemotron_h: nemotronHConfig,
  zamba2: zamba2Config,
  falcon_h1: falconH1Config,
};
