/**
 * The extension-host half of the e2e suite: a module exporting run(), the contract of both
 * @vscode/test-electron (npm run test:electron) and code-server's extensionTestsPath
 * (npm run test:e2e), so one suite serves both. Bundled by test/e2e/build-suite.mjs; mocha itself
 * is loaded from the project's node_modules at run time.
 */
import Mocha from 'mocha';

export async function run(): Promise<void> {
  // MAMBA_E2E_GREP (inherited from code-server's environment) runs a subset while developing.
  const mocha = new Mocha({ ui: 'bdd', timeout: Number(process.env.MAMBA_E2E_TIMEOUT_MS ?? 180_000), color: false, reporter: 'spec', grep: process.env.MAMBA_E2E_GREP });
  // Tests register with describe/it when their module is evaluated: install the globals first,
  // then load the (bundled, lazily evaluated) test modules.
  mocha.suite.emit('pre-require', globalThis, 'e2e', mocha);
  await import('./inspect.test');
  await import('./files.test');
  await import('./analysis.test');
  await import('./interventions.test');
  await import('./longContext.test');
  const failures = await new Promise<number>((resolve) => mocha.run(resolve));
  if (failures > 0) throw new Error(`${failures} e2e test(s) failed`);
}
