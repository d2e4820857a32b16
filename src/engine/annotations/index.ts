/**
 * Annotations of forgotten/retained tokens: the platform-neutral API the extension host, the
 * webview and the CLI share. Everything here is a pure function of its inputs; file access
 * lives in src/node/annotationFileStore.ts.
 */
export * from './anchor';
export * from './edit';
export * from './exchange';
export * from './merge';
export * from './schema';
export * from './sha256';
export * from './suggestions';
