/** The status bar item: model · backend · tokens of the last inspection; a click shows the panel. */
import * as vscode from 'vscode';
import type { BackendInfo } from '../protocol';

export class StatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('mambaScope.status', vscode.StatusBarAlignment.Right, 100);
  private model = '';
  private backend: BackendInfo | undefined;
  private tokens: number | undefined;

  constructor() {
    this.item.name = 'Mamba Scope';
    this.item.command = 'mambaScope.showPanel';
  }

  setModel(label: string): void {
    this.model = label;
    this.update();
  }

  setBackend(info: BackendInfo): void {
    this.backend = info;
    this.update();
  }

  setTokens(n: number | undefined): void {
    this.tokens = n;
    this.update();
  }

  private update(): void {
    // Before the first inspection there is no backend yet: show the model alone.
    const parts = [this.model, this.backend?.backend, this.tokens === undefined ? undefined : `${this.tokens} tokens`].filter(Boolean);
    this.item.text = `$(pulse) ${parts.join(' · ')}`;
    const b = this.backend;
    const tip = new vscode.MarkdownString(`**Mamba Scope**\n\nmodel: ${this.model}\n\n`);
    if (b) {
      tip.appendMarkdown(`backend: ${b.backend} (${b.reason})`);
      if (b.adapter) tip.appendMarkdown(`\n\nadapter: ${b.adapter.vendor} ${b.adapter.architecture} ${b.adapter.device}`.trimEnd());
      for (const f of b.fallbacksTried) tip.appendMarkdown(`\n\n${f.backend} failed: ${f.error}`);
    }
    this.item.tooltip = tip;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
