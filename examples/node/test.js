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

/** The Python programs of this process's sandboxes running now: its descendants only, so
 * that another test on the machine, with sandboxes of its own, counts for nothing here. */
function sandboxed () {
  const fs = require('node:fs')
  const read = (path) => { try { return fs.readFileSync(path, 'utf8') } catch { return '' } }
  const parent = new Map()
  for (const name of fs.readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n))) {
    const stat = read(`/proc/${name}/stat`)
    if (stat) parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
  }
  const mine = (pid) => {
    for (let p = parent.get(pid); p !== undefined && p > 0; p = parent.get(p)) {
      if (p === process.pid) return true
    }
    return false
  }
  return [...parent.keys()]
    .filter(mine)
    .map((pid) => read(`/proc/${pid}/cmdline`).split('\0').join(' '))
    .filter((args) => args.startsWith('python3 /submission'))
}

/** Waits until no sandboxed Python program runs, failing with `message` past `ms`. */
async function allGone (ms, message) {
  const since = Date.now()
  while (sandboxed().length > 0) {
    assert.ok(Date.now() - since < ms, message)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

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

test('a compile that writes 1 GB, and a program that writes to the image', async () => {
  // Each file a compiler writes is held to the profile's file_bytes: the compile fails.
  let r = await post('/run', { language: 'c', code: 'char pad[1 << 30] = {1};\nint main(int argc, char **argv) { return pad[argc << 20]; }\n' })
  assert.equal(r.body.status, 'compile_error', JSON.stringify(r.body).slice(0, 500))
  assert.match(r.body.compile.output, /File size limit exceeded/)
  // The image is read-only: a write fails, the program sees the error.
  r = await post('/run', { language: 'bash', code: 'echo x > /usr/bin/evil && echo wrote; ls /usr/bin/evil' })
  assert.equal(r.body.status, 'runtime_error')
  assert.match(r.body.stderr, /Read-only file system|Permission denied/)
})

test('every language\'s ok sample, and the extra samples, get their verdicts from /judge', async () => {
  const fs = require('node:fs')
  const path = require('node:path')
  const cases = []
  const catalog = path.join(__dirname, '..', 'languages')
  for (const id of fs.readdirSync(catalog)) {
    const samples = path.join(catalog, id, 'samples')
    if (!fs.existsSync(samples)) continue
    const ok = fs.readdirSync(samples).find((f) => f.startsWith('ok.'))
    cases.push([id, path.join(samples, ok), 'a-plus-b', 'ok'])
  }
  const extras = path.join(__dirname, '..', 'samples')
  const expected = JSON.parse(fs.readFileSync(path.join(extras, 'expected.json'), 'utf8'))
  for (const [file, { problem, verdict }] of Object.entries(expected)) {
    cases.push([file.endsWith('.cpp') ? 'cpp' : 'python3', path.join(extras, file), problem, verdict])
  }
  const results = []
  for (let i = 0; i < cases.length; i += 2) {
    results.push(...await Promise.all(cases.slice(i, i + 2).map(async ([language, file, problem, want]) => {
      const r = await post('/judge', { language, code: fs.readFileSync(file, 'utf8'), problem })
      return [file, r.body.verdict, want]
    })))
  }
  for (const [file, got, want] of results) assert.equal(got, want, file)
  assert.ok(results.length >= 28, `only ${results.length} samples`)
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
  await allGone(2000, 'the run outlived its client')
})

test('the page: an editor, a live terminal, every language', async (t) => {
  const fs = require('node:fs')
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p))
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
    await page.setViewport({ width: 1200, height: 700 })
    await page.goto(base + '/')
    await page.waitForFunction(() => document.body.dataset.ready === 'yes')
    // Every language is in the picker, with its hello world in the editor when picked.
    const options = await page.$$eval('#language option', (os) => os.map((o) => o.value))
    assert.deepEqual(options.sort(), Object.keys(require('./playground').loadCatalog()).sort())
    assert.match(await page.evaluate(() => window.editor.getValue()), /Hello, world!/)
    const screen = () => page.evaluate(() => {
      const b = window.term.buffer.active
      const lines = []
      for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true))
      return lines.join('\n')
    })
    const until = async (what, timeout = 30000) => {
      const started = Date.now()
      for (;;) {
        const text = await screen()
        if (what instanceof RegExp ? what.test(text) : text.includes(what)) return text
        if (Date.now() - started > timeout) throw new Error(`the terminal never showed ${what}; it shows:\n${text}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const verdict = () => page.waitForFunction(
      () => !['-', 'running...'].includes(document.getElementById('verdict').textContent), { timeout: 60000 },
    ).then(() => page.$eval('#verdict', (e) => e.textContent))
    const start = async (language, code) => {
      await page.select('#language', language)
      await page.evaluate((c) => window.editor.setValue(c), code)
      await page.click('#run')
    }

    // Typed keys reach input(), and the answer shows in the terminal as it is written.
    await start('python3', 'name = input("name? ")\nprint("hello,", name)\n')
    await until('name? ')
    await page.keyboard.type('isolette')
    await page.keyboard.press('Enter')
    await until('hello, isolette')
    assert.equal(await verdict(), 'ok')
    assert.match(await page.$eval('#figures', (e) => e.textContent), /cpu [\d.]+ ms, memory \d+ KiB/)

    // A resized window resizes the program's terminal.
    await start('python3', 'import os\ninput()\nprint("size", os.get_terminal_size().columns, os.get_terminal_size().lines)\n')
    await page.setViewport({ width: 900, height: 500 })
    await page.waitForFunction(() => window.term.cols < 60)
    const [cols, rows] = await page.evaluate(() => [window.term.cols, window.term.rows])
    await page.keyboard.press('Enter')
    await until(`size ${cols} ${rows}`)
    assert.equal(await verdict(), 'ok')
    await page.setViewport({ width: 1200, height: 700 })

    // Ctrl-C interrupts a loop: the program gets SIGINT.
    await start('python3', 'import time\nwhile True:\n    print("tick", flush=True)\n    time.sleep(0.2)\n')
    await until('tick')
    await page.keyboard.down('Control')
    await page.keyboard.press('c')
    await page.keyboard.up('Control')
    await until('KeyboardInterrupt')
    assert.equal(await verdict(), 'signaled')

    // One program in three more languages (compiled ones: the compile runs first).
    for (const [language, code] of [
      ['cpp', '#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<"sum "<<a+b<<"\\n";}\n'],
      ['java', 'import java.util.Scanner;\npublic class Main { public static void main(String[] a) { Scanner s = new Scanner(System.in); System.out.println("sum " + (s.nextInt() + s.nextInt())); } }\n'],
      ['ruby', 'a, b = gets.split.map(&:to_i)\nputs "sum #{a + b}"\n'],
    ]) {
      // Typed at once: keys typed while it compiles reach the program when it starts.
      await start(language, code)
      await page.keyboard.type('20 22')
      await page.keyboard.press('Enter')
      await until('sum 42', 60000)
      assert.equal(await verdict(), 'ok', language)
    }
    if (process.env.PLAYGROUND_SCREENSHOT) await page.screenshot({ path: process.env.PLAYGROUND_SCREENSHOT })

    // Closing the tab ends the sandbox.
    await start('python3', 'import time\ntime.sleep(60)\n')
    while (sandboxed().length === 0) await new Promise((resolve) => setTimeout(resolve, 50))
    await page.close()
    await allGone(3000, 'the sandbox outlived its tab')
  } finally {
    await browser.close()
  }
})

test('a profile with a field missing is refused when the catalog loads, naming the field', () => {
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  const { loadCatalog } = require('./playground')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'catalog-'))
  try {
    fs.cpSync(path.join(__dirname, '..', 'languages', 'python3'), path.join(dir, 'python3'), { recursive: true })
    const file = path.join(dir, 'python3', 'language.json')
    const profile = JSON.parse(fs.readFileSync(file, 'utf8'))
    assert.equal(loadCatalog(dir).python3.image, profile.image)
    delete profile.memory_errors
    fs.writeFileSync(file, JSON.stringify(profile))
    assert.throws(() => loadCatalog(dir), /language\.json: the field `memory_errors` is missing/)
    fs.cpSync(path.join(__dirname, '..', 'languages', 'c'), path.join(dir, 'c'), { recursive: true })
    fs.rmSync(path.join(dir, 'python3'), { recursive: true })
    const c = JSON.parse(fs.readFileSync(path.join(dir, 'c', 'language.json'), 'utf8'))
    delete c.compile.file_bytes
    fs.writeFileSync(path.join(dir, 'c', 'language.json'), JSON.stringify(c))
    assert.throws(() => loadCatalog(dir), /language\.json: the field `compile\.file_bytes` is missing/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
