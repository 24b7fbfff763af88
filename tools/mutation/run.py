#!/usr/bin/env python3
"""make mutation: plant one-line faults, one at a time, and list the ones no
test catches.

Each fault in tools/mutation/faults.txt names a file, a text that occurs
exactly once in it, its replacement, and the test layers that should catch
it.  For each fault this copies the tree to a scratch directory, applies the
fault, builds and installs it into a private relocated server
(tools/dev/pgcopy.sh, so the system's install is untouched), and runs the
named layers through test/run.sh.  A fault is caught when any layer fails.

    make mutation                     # every fault
    make mutation FAULTS='a b'        # some of them
Runs as root (test/run.sh drops to the postgres user).  Exit 1 when a fault
survives, 2 when a fault no longer applies (its text is not found once).
"""
import os, re, shutil, subprocess, sys, tempfile, time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FAULTS = os.path.join(TOP, 'tools', 'mutation', 'faults.txt')


def parse(path):
    """Blocks of 'key: value' lines separated by blank lines; # comments."""
    faults, cur = [], {}
    for line in open(path, encoding='utf-8'):
        line = line.rstrip('\n')
        if line.startswith('#'):
            continue
        if not line.strip():
            if cur:
                faults.append(cur)
            cur = {}
            continue
        key, _, value = line.partition(':')
        key = key.strip()
        value = value[1:] if value.startswith(' ') else value
        if key in cur:   # continuation of the same key: a new line of text
            cur[key] += '\n' + value
        else:
            cur[key] = value
    if cur:
        faults.append(cur)
    for f in faults:
        for k in ('fault', 'file', 'find', 'replace', 'catch'):
            if k not in f:
                sys.exit(f'{path}: fault {f.get("fault", "?")} has no "{k}"')
    return faults


def layers_env(catch):
    """'unit regress:frames,setup tap:022_retention interop' -> env for test/run.sh."""
    suites, regress, tap = [], [], []
    for word in catch.split():
        kind, _, arg = word.partition(':')
        if kind not in ('unit', 'regress', 'tap', 'interop', 'demo', 'fuzz'):
            sys.exit(f'unknown layer {kind!r} in catch: {catch}')
        if kind not in suites:
            suites.append(kind)
        if kind == 'regress' and arg:
            regress += arg.split(',')
        if kind == 'tap' and arg:
            tap += ['test/t/' + (a if a.endswith('.pl') else a + '.pl') for a in arg.split(',')]
    env = {'SUITES': ' '.join(suites)}
    if regress:
        env['REGRESS_TESTS'] = ' '.join(regress)
    if tap:
        env['TAP_TESTS'] = ' '.join(tap)
    return env


def main():
    want = set(os.environ.get('FAULTS', '').split())
    faults = [f for f in parse(FAULTS) if not want or f['fault'] in want]
    if os.geteuid() != 0:
        sys.exit('make mutation runs as root (it installs into a private server copy)')
    pg_config = subprocess.check_output(
        ['bash', os.path.join(TOP, 'tools/dev/pgcopy.sh'), '/opt/pgwt/mutation'], text=True).strip()
    logdir = os.path.join(TOP, 'test', 'logs', 'mutation')
    os.makedirs(logdir, exist_ok=True)
    results = []
    for f in faults:
        work = tempfile.mkdtemp(prefix='rs-mutation-')
        subprocess.run(['rsync', '-a', '--exclude', '.git', '--exclude', 'node_modules',
                        '--exclude', 'test/logs', '--exclude', 'test/fuzz/build', TOP + '/', work + '/'],
                       check=True)
        path = os.path.join(work, f['file'])
        text = open(path, encoding='utf-8').read()
        n = text.count(f['find'])
        if n != 1:
            results.append((f['fault'], f'does not apply ({n} matches)'))
            shutil.rmtree(work)
            continue
        open(path, 'w', encoding='utf-8').write(text.replace(f['find'], f['replace']))
        env = dict(os.environ, PG_CONFIG=pg_config, **layers_env(f['catch']))
        log = os.path.join(logdir, f['fault'] + '.log')
        t0 = time.time()
        with open(log, 'w') as out:
            rc = subprocess.run(['bash', 'test/run.sh'], cwd=work, env=env,
                                stdout=out, stderr=subprocess.STDOUT).returncode
        tail = open(log, encoding='utf-8', errors='replace').read().strip().splitlines()[-1:]
        summary = tail[0] if tail else ''
        state = 'caught' if rc != 0 else 'SURVIVED'
        if 'build failed' in open(log, errors='replace').read():
            state = 'does not build'
        results.append((f['fault'], f'{state} ({summary}; {time.time() - t0:.0f} s; {f["catch"]})'))
        print(f'{f["fault"]}: {results[-1][1]}', flush=True)
        shutil.rmtree(work, ignore_errors=True)
    print()
    survived = [r for r in results if 'SURVIVED' in r[1]]
    broken = [r for r in results if 'does not' in r[1]]
    print(f'{len(results)} faults: {len(results) - len(survived) - len(broken)} caught, '
          f'{len(survived)} survived, {len(broken)} not applicable')
    for name, what in survived + broken:
        print(f'  {name}: {what}')
    sys.exit(2 if broken else 1 if survived else 0)


if __name__ == '__main__':
    main()
