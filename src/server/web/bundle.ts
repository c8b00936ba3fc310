/**
 * Bundles the dashboard client (app/main.ts and its imports) into one ES module with esbuild.
 * `npm run build` calls it once (scripts/postbuild.mjs writes dist/server/web/static/app.js);
 * when running from sources (tsx, vitest) the web routes call it on the first request instead.
 * esbuild is a development dependency: an installed package never reaches this code.
 */
export async function bundleClient(entry: string): Promise<string> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error('esbuild produced no output');
  return out.text;
}
