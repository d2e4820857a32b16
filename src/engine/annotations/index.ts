/**
 * Annotations of forgotten/retained tokens: the platform-neutral API the extension host, the
 * webview and the CLI share. Every function here is pure (clock and ids injectable through
 * EditContext); file access lives in src/node/annotationFileStore.ts.
 *
 * A window's life cycle (text = the sample as open, offsets = tokenizer.encode(text).offsets):
 *   open:    base = await store.read(path)
 *            mine = reanchor(base ?? emptyAnnotationFile(sampleRef, modelRef, tokenizerRef), text, offsets).file
 *   edit:    ({ file: mine } = addAnnotation(mine, { span: spanOfTokens(text, offsets, i, j), layer, threshold, label, note }))
 *            mine = updateAnnotation(mine, id, { label, note }) · mine = deleteAnnotations(mine, [id])
 *   detector: all = suggestionsFromForgotten(layer, retention.forgottenAt(τ), τ, text, offsets)
 *            show pendingSuggestions(mine, all); mine = acceptSuggestions(mine, picked) / rejectSuggestions(mine, picked)
 *   save:    mine = base = await store.save(path, mine, base, { text, offsets })   (merges other windows' work)
 *   file changed on disk: disk = await store.read(path)
 *            mine = reanchor(mergeAnnotationFiles(mine, disk!, base), text, offsets).file; base = disk
 *   text edited: mine = reanchor(mine, newText, newOffsets).file  (moved / stale ids in the result)
 *   export: exportAnnotations(mine, formatFromName(name)!) → write it to `name`
 *   import: mine = reanchor(importInto(mine, contentsOfName, formatFromName(name)!, name), text, offsets).file
 * Stale annotations (stale: true) keep their old offsets: show them in a list, not in the editor.
 */
export * from './anchor';
export * from './edit';
export * from './exchange';
export * from './merge';
export * from './schema';
export * from './sha256';
export * from './suggestions';
