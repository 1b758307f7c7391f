/** Semantic versions of bundles (`x.y.z[-pre][+build]`, as the manifest schema allows), compared. */

function parts(version: string): { core: number[]; pre: string | undefined } {
  const [withoutBuild = ''] = version.split('+');
  const dash = withoutBuild.indexOf('-');
  const core = (dash < 0 ? withoutBuild : withoutBuild.slice(0, dash)).split('.').map(Number);
  return { core, pre: dash < 0 ? undefined : withoutBuild.slice(dash + 1) };
}

function comparePre(a: string, b: string): number {
  const as = a.split('.');
  const bs = b.split('.');
  for (let i = 0; i < Math.max(as.length, bs.length); i++) {
    const x = as[i];
    const y = bs[i];
    if (x === undefined || y === undefined) return x === undefined ? -1 : 1;
    const xNumeric = /^\d+$/.test(x);
    const yNumeric = /^\d+$/.test(y);
    // semver §11.4.3: a numeric identifier ranks below an alphanumeric one, whatever their characters.
    if (xNumeric !== yNumeric) return xNumeric ? -1 : 1;
    const order = xNumeric ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
    if (order !== 0) return Math.sign(order);
  }
  return 0;
}

/** Negative when a < b, 0 when equal in precedence (build metadata ignored), positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < 3; i++) {
    const order = (pa.core[i] ?? 0) - (pb.core[i] ?? 0);
    if (order !== 0) return Math.sign(order);
  }
  // A pre-release comes before its release.
  if (pa.pre === undefined || pb.pre === undefined) return pa.pre === pb.pre ? 0 : pa.pre === undefined ? 1 : -1;
  return comparePre(pa.pre, pb.pre);
}
