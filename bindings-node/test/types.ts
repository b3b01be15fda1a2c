// Type-checked in CI with `tsc --noEmit --strict`: the package as a TypeScript judge uses it.
import * as isolette from 'isolette'
import type { Outcome, Status } from 'isolette'

async function judge (dir: string, tests: Array<[string, string]>): Promise<string[]> {
  const box = new isolette.Sandbox(isolette.Image.open(dir), { memory: '256M', cpuTime: 1000, wallTime: '3s', pids: 32 })
  const verdicts: string[] = []
  for (const [given, expected] of tests) {
    const out: Outcome = await box.run(['python3', 'sol.py'], { stdin: given, signal: AbortSignal.timeout(10_000) })
    const status: Status = out.status
    verdicts.push(status !== 'ok' ? status : out.stdout.toString() === expected ? 'accepted' : 'wrong_answer')
  }
  const running = isolette.spawn(isolette.Image.load('python:3.12'), ['python3'], { tty: [24, 80], stdin: 'pipe', stdout: 'pipe' })
  running.stdout?.on('data', (d: Buffer) => process.stdout.write(d))
  running.stdin?.write('print(6*7)\n')
  running.resize(50, 132)
  running.signal('SIGTERM')
  const last = await running.wait()
  verdicts.push(`${last.status} ${last.exitCode ?? last.signal} ${JSON.stringify(last)}`)
  try {
    await isolette.run(isolette.Image.open(dir), [])
  } catch (e) {
    if (e instanceof isolette.IsoletteError) verdicts.push(e.code)
  }
  return verdicts
}

async function buildImage (context: string): Promise<string> {
  const store = new isolette.Store()
  const steps: string[] = []
  try {
    const built = await store.build(context, {
      tags: ['judge/cpp:1'],
      buildArgs: { GCC: '12' },
      network: 'none',
      wallTime: '10m',
      onProgress: (e) => { if (e.event === 'step') steps.push(`${e.line} ${e.cached ? 'CACHED' : e.reason ?? ''}`) },
    })
    return await store.push(built.names[0], `localhost:5000/${built.names[0]}`, { insecure: ['localhost:5000'] })
  } catch (e) {
    if (e instanceof isolette.IsoletteError && e.code === 'ERR_ISOLETTE_BUILD') return `line ${e.line}: ${e.exitCode}`
    throw e
  }
}

async function app (dir: string): Promise<string> {
  const project = isolette.Project.load({ dir, projectName: 'app', environment: { GREETING: 'hi' } })
  const running: isolette.RunningProject = await project.up({ wait: true, onProgress: (line) => console.log(line) })
  const web: isolette.ServiceStatus | undefined = running.ps().find((s) => s.service === 'web')
  const logs = running.logs('web').stdout.toString()
  await running.down({ volumes: true })
  return `${project.services.join(',')} ${web?.health ?? 'no check'} ${logs}`
}

void judge
void buildImage
void app
