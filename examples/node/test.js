'use strict'
// The playground over HTTP, and its page in a real browser (Debian's chromium, driven by
// puppeteer-core). Run by examples/smoke.sh (as root, the test images built).
const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { listen } = require('./playground')

let server
let base
test.before(async () => {
  server = await listen(0)
  base = `http://127.0.0.1:${server.address().port}`
})
test.after(() => server.close())

async function post (route, body) {
  const response = await fetch(base + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: response.status, body: await response.json() }
}

test('runs Python and C++, and judges', async () => {
  let r = await post('/run', { language: 'python3', code: 'print(int(input()) * 2)', stdin: '21\n' })
  assert.deepEqual([r.status, r.body.status, r.body.stdout], [200, 'ok', '42\n'])
  r = await post('/run', { language: 'cpp', code: '#include <cstdio>\nint main(){std::puts("hi from c++");}' })
  assert.deepEqual([r.body.status, r.body.stdout, r.body.compile.status], ['ok', 'hi from c++\n', 'ok'])
  r = await post('/run', { language: 'cpp', code: 'int main() { return nope; }' })
  assert.equal(r.body.status, 'compile_error')
  assert.match(r.body.compile.output, /nope/)
  r = await post('/run', { language: 'python3', code: 'while True: pass' })
  assert.equal(r.body.status, 'cpu_time_limit')
  r = await post('/judge', { language: 'python3', code: 'a, b = map(int, input().split()); print(a + b)', problem: 'a-plus-b' })
  assert.deepEqual([r.body.verdict, r.body.tests.length], ['ok', 3])
  r = await post('/judge', { language: 'python3', code: 'print(0)', problem: 'a-plus-b' })
  assert.equal(r.body.verdict, 'wrong_answer')
})

test('every sample gets its verdict from /judge', async () => {
  const fs = require('node:fs')
  const path = require('node:path')
  const dir = path.join(__dirname, '..', 'samples')
  const samples = fs.readdirSync(dir).filter((f) => f.endsWith('.py') || f.endsWith('.cpp'))
  const expected = (name) => (name === 'fork_bomb' ? 'cpu_time_limit' : name === 'reverse_ok' ? 'ok' : name)
  const results = []
  for (let i = 0; i < samples.length; i += 4) {
    results.push(...await Promise.all(samples.slice(i, i + 4).map(async (file) => {
      const name = file.replace(/\.(py|cpp)$/, '')
      const r = await post('/judge', {
        language: file.endsWith('.cpp') ? 'cpp' : 'python3',
        code: fs.readFileSync(path.join(dir, file), 'utf8'),
        problem: name === 'reverse_ok' ? 'reverse-lines' : 'a-plus-b',
      })
      return [file, r.body.verdict, expected(name)]
    })))
  }
  for (const [file, got, want] of results) assert.equal(got, want, file)
  assert.ok(results.length >= 20)
})

test('/run?stream=1 sends the output as it is written', async () => {
  const response = await fetch(base + '/run?stream=1', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ language: 'python3', code: 'import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)' }),
  })
  assert.equal(response.headers.get('content-type'), 'text/event-stream')
  const arrivals = []
  let text = ''
  for await (const chunk of response.body) {
    text += Buffer.from(chunk).toString()
    arrivals.push([Date.now(), text.split('event: stdout').length - 1])
  }
  const outcome = JSON.parse(/event: outcome\ndata: (.*)\n/.exec(text)[1])
  assert.equal(outcome.status, 'ok')
  assert.equal((text.match(/event: stdout/g) || []).length >= 3, true, text)
  // The first line came well before the end.
  const first = arrivals.find(([, n]) => n >= 1)[0]
  assert.ok(arrivals.at(-1)[0] - first >= 400, 'the output came all at the end')
})

test('bad requests are 400, big ones 413', async () => {
  assert.equal((await post('/run', '{not json')).status, 400)
  assert.equal((await post('/run', { language: 'cobol', code: '' })).status, 400)
  assert.equal((await post('/judge', { language: 'python3', code: '', problem: '../etc' })).status, 400)
  assert.equal((await post('/run', { language: 'python3', code: 'x'.repeat(2 << 20) })).status, 413)
})

test('requests are served concurrently, and a client that goes away cancels its run', async () => {
  const started = Date.now()
  const slow = Array.from({ length: 4 }, () => post('/run', { language: 'python3', code: 'import time; time.sleep(1)' }))
  const results = await Promise.all(slow)
  assert.deepEqual(results.map((r) => r.body.status), ['ok', 'ok', 'ok', 'ok'])
  assert.ok(Date.now() - started < 3000, `4 one-second runs took ${Date.now() - started} ms`)
  // A client that hangs up: the sandbox goes at once (its sleep would last 30 s).
  await new Promise((resolve) => {
    const req = http.request(base + '/run', { method: 'POST', headers: { 'content-type': 'application/json' } })
    req.on('error', () => {})
    req.end(JSON.stringify({ language: 'python3', code: 'import time; time.sleep(30)' }))
    setTimeout(() => { req.destroy(); resolve() }, 500)
  })
  const gone = Date.now()
  const { execFileSync } = require('node:child_process')
  for (;;) {
    const left = execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((l) => l.startsWith('python3 /submission'))
    if (left.length === 0) break
    assert.ok(Date.now() - gone < 2000, 'the run outlived its client')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
})

test('the page runs a Python and a C++ program in a real browser', async (t) => {
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => require('node:fs').existsSync(p))
  if (!chromium) {
    if (process.env.ISOLETTE_TEST_STRICT === '1') throw new Error('chromium is missing (apt-get install chromium)')
    t.skip('chromium is missing')
    return
  }
  const puppeteer = require('puppeteer-core')
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
  try {
    const page = await browser.newPage()
    await page.goto(base + '/')
    const runIn = async (language, code, stdin) => {
      await page.select('#language', language)
      await page.$eval('#code', (el, v) => { el.value = v }, code)
      await page.$eval('#stdin', (el, v) => { el.value = v }, stdin)
      await page.click('#run')
      await page.waitForFunction(() => !['-', 'running...'].includes(document.getElementById('verdict').textContent), { timeout: 30000 })
      return page.evaluate(() => [document.getElementById('verdict').textContent, document.getElementById('stdout').textContent])
    }
    assert.deepEqual(await runIn('python3', 'print(sum(map(int, input().split())))', '2 3 4'), ['ok', '9\n'])
    assert.deepEqual(await runIn('cpp', '#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a*b<<"\\n";}', '6 7'), ['ok', '42\n'])
    const [verdict] = await runIn('python3', 'raise SystemExit(3)', '')
    assert.equal(verdict, 'runtime_error')
  } finally {
    await browser.close()
  }
})
