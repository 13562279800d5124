// Generates npm version/range cases and asks node-semver for the answers.
// Deterministic: a fixed-seed mulberry32 PRNG, so the output only changes with this file
// or the pinned semver version.
'use strict'
const semver = require('./node_modules/semver')

let seed = 0x5eed1234
function rand () {
  seed = (seed + 0x6D2B79F5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)]
const chance = (p) => rand() < p

const NUMS = ['0', '0', '1', '1', '2', '3', '10']
const PRE = ['alpha', 'alpha.1', 'alpha.beta', 'beta', 'beta.2', 'beta.11', 'rc.1', '0', '1', 'x-y', 'alpha.0', 'rc.1.2']
const BUILD = ['build.1', '001', 'sha.5114f85', 'exp-1']
const BAD_VERSIONS = ['1.2', '01.2.3', '1.2.3-01', '1.2.3-', 'a.b.c', '1.2.3.4', '1.2.3+', '', '=1.2.3', 'v 1.2.3', '1.2.3-beta..1', '9007199254740992.0.0']

function version () {
  let v = `${pick(NUMS)}.${pick(NUMS)}.${pick(NUMS)}`
  if (chance(0.4)) v += '-' + pick(PRE)
  if (chance(0.1)) v += '+' + pick(BUILD)
  if (chance(0.05)) v = 'v' + v
  if (chance(0.03)) v = ' ' + v + ' '
  return v
}

function partial () {
  const x = () => pick(['x', 'X', '*'])
  switch (Math.floor(rand() * 7)) {
    case 0: return pick(NUMS)
    case 1: return `${pick(NUMS)}.${pick(NUMS)}`
    case 2: return `${pick(NUMS)}.${x()}`
    case 3: return `${pick(NUMS)}.${pick(NUMS)}.${x()}`
    case 4: return x()
    default: return version().trim()
  }
}

function comparator () {
  const sp = () => (chance(0.15) ? ' ' : '')
  switch (Math.floor(rand() * 6)) {
    case 0: return '^' + sp() + partial()
    case 1: return pick(['~', '~>']) + sp() + partial()
    case 2: return `${partial()} - ${partial()}`
    default: return pick(['', '=', '<', '<=', '>', '>=']) + sp() + partial()
  }
}

const BAD_RANGES = ['^foo', '>=1.2.3 ||| 2', '1.2.3 -', '<=>1', '>=a', '1.2.3 - 4.5.6 - 7', '~1.2.3-', '>= ^1', '1.2.3 ||', '|| 1.2.3', '==1.2.3', '!1.2.3']

function range () {
  if (chance(0.04)) return pick(BAD_RANGES)
  const sets = []
  const n = chance(0.3) ? 2 : 1
  for (let i = 0; i < n; i++) {
    const m = chance(0.35) ? 2 : 1
    const cs = []
    for (let j = 0; j < m; j++) cs.push(comparator())
    sets.push(cs.join(' '))
  }
  return sets.join(pick([' || ', '||', ' ||  ']))
}

const versions = []
for (let i = 0; i < 300; i++) versions.push(chance(0.05) ? pick(BAD_VERSIONS) : version())
for (const b of BAD_VERSIONS) versions.push(b)

const out = { generator: 'semver@' + require('./node_modules/semver/package.json').version, versions: [], compare: [], satisfies: [] }
for (const v of versions) out.versions.push([v, semver.valid(v)])
const valid = versions.filter((v) => semver.valid(v) !== null)
for (let i = 0; i < 1500; i++) {
  const a = pick(valid)
  const b = chance(0.1) ? a : pick(valid)
  out.compare.push([a, b, semver.compare(a, b)])
}
for (let i = 0; i < 700; i++) {
  const r = range()
  const ok = semver.validRange(r) !== null
  // Versions near the range's own numbers are the interesting ones.
  const near = r.match(/\d+\.\d+\.\d+/g) || []
  for (let j = 0; j < 6; j++) {
    let v = pick(versions)
    if (near.length && chance(0.6)) {
      // A version close to one the range names: same tuple, another pre-release, or one
      // step up or down; that is where boundaries and the pre-release rule bite.
      const [M, m, p] = pick(near).split('.').map(Number)
      const t = [M, m, p]
      if (chance(0.3)) { const k = Math.floor(rand() * 3); t[k] = Math.max(0, t[k] + pick([-1, 1])) }
      v = t.join('.')
      if (chance(0.6)) v += '-' + pick(PRE)
    }
    const validV = semver.valid(v) !== null
    out.satisfies.push([v, r, ok && validV ? semver.satisfies(v, r) : null])
  }
}
process.stdout.write(JSON.stringify(out) + '\n')
