/**
 * Every view of the panel, in tab order within its area. A new view (numerics, attention,
 * annotations) is one module exporting a ViewSpec, added here.
 */
import { annotationsView } from './annotations';
import { interventionsView } from './interventions';
import { logitLensView } from './logitLens';
import { sweepView } from './sweep';
import { attentionView } from './attention';
import { channelMemoryView } from './channelMemory';
import { gatesView } from './gates';
import { layersView } from './layers';
import { metricHeatmapView } from './metricHeatmap';
import { nextTokenView } from './nextToken';
import { numericsView } from './numerics';
import { overviewView } from './overview';
import { pathsView } from './paths';
import { stateView } from './state';
import { tensorsView } from './tensors';
import { tokenStripView } from './tokenStrip';
import type { ViewSpec } from './view';

export const VIEWS: readonly ViewSpec[] = [overviewView, tokenStripView, metricHeatmapView, gatesView, attentionView, pathsView, numericsView, tensorsView, sweepView, logitLensView, stateView, layersView, channelMemoryView, annotationsView, interventionsView, nextTokenView];
