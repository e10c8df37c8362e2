// The official `openai` npm package, unmodified, against `frugal serve`: chat and completions,
// streamed and not, logprobs, usage with include_usage, the frugal object and headers, and
// errors raised as the client's own classes. Run by tests/python/test_openai_clients.py:
//   node tests/node/openai_client_test.mjs URL API_KEY BUSY_URL
// URL serves the bundled cascade with API_KEY; BUSY_URL answers every completion with 429.
// Prints one line per check; exits 1 on the first failure.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [url, apiKey, busyUrl] = process.argv.slice(2);
if (!url || !apiKey || !busyUrl) {
  console.error('usage: node openai_client_test.mjs URL API_KEY BUSY_URL');
  process.exit(2);
}
// No retries: a 429 must reach the check as RateLimitError, not be retried.
const client = (base, key = apiKey) =>
  new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 60_000 });
const c = client(url);
const user = (content) => [{ role: 'user', content }];

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

// Resolves to the error `fn` rejected with; fails when it resolved.
async function rejection(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  assert.fail('the request succeeded');
}

check('chat: answer, usage, headers and the frugal object', async () => {
  const { data: r, response } = await c.chat.completions
    .create({ model: 'frugal', messages: user('What is 21 + 21?'), max_tokens: 32 })
    .withResponse();
  assert.equal(r.object, 'chat.completion');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  assert.ok(['small', 'large'].includes(r.frugal.tier), JSON.stringify(r.frugal));
  assert.equal(response.headers.get('x-frugal-tier'), r.frugal.tier);
  assert.ok(Math.abs(Number(response.headers.get('x-frugal-cost')) - r.frugal.cost) <= 1e-9);
});

check('chat: a stream with include_usage equals the whole answer', async () => {
  const messages = user('Sort 8 2 5 ascending.');
  const whole = await c.chat.completions.create({ model: 'frugal', messages, max_tokens: 32 });
  const stream = await c.chat.completions.create({
    model: 'frugal', messages, max_tokens: 32, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let last = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      text += chunk.choices[0].delta.content ?? '';
      if (chunk.choices[0].finish_reason) finish = chunk;
    }
    last = chunk;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish.choices[0].finish_reason, 'stop');
  assert.equal(finish.frugal.tier, 'cache');
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, whole.usage.completion_tokens);
});

check('chat: logprobs and top_logprobs', async () => {
  const r = await c.chat.completions.create({
    model: 'small', messages: user('What is 3 + 3?'), max_tokens: 16, logprobs: true,
    top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  assert.ok(content.length > 0);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.equal(Buffer.from(t.bytes).toString('utf8'), t.token);
  }
});

check('completions: streamed and not, with logprobs', async () => {
  const req = { model: 'large', prompt: 'What is', max_tokens: 10, logprobs: 1 };
  const whole = await c.completions.create(req);
  assert.equal(whole.object, 'text_completion');
  const lp = whole.choices[0].logprobs;
  assert.equal(lp.tokens.length, whole.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  const stream = await c.completions.create({
    ...req, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) text += chunk.choices[0].text;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

check('models: the cascade and each tier', async () => {
  const ids = [];
  for await (const m of c.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['frugal', 'small', 'large']);
});

check('errors: NotFoundError', async () => {
  const e = await rejection(() => c.chat.completions.create({ model: 'gpt-4o', messages: user('hi') }));
  assert.ok(e instanceof OpenAI.NotFoundError, String(e));
  assert.equal(e.code, 'model_not_found');
});

check('errors: BadRequestError for n = 2 and for a prompt beyond every context', async () => {
  let e = await rejection(() =>
    c.chat.completions.create({ model: 'frugal', messages: user('hi'), n: 2 }));
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.param, 'n');
  e = await rejection(() =>
    c.chat.completions.create({ model: 'frugal', messages: user('Sort 4 9 1 7. '.repeat(60)) }));
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.code, 'context_length_exceeded');
});

check('errors: AuthenticationError', async () => {
  const e = await rejection(() =>
    client(url, 'sk-wrong').chat.completions.create({ model: 'frugal', messages: user('hi') }));
  assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
});

check('errors: RateLimitError with Retry-After', async () => {
  const e = await rejection(() =>
    client(busyUrl).chat.completions.create({ model: 'frugal', messages: user('hi') }));
  assert.ok(e instanceof OpenAI.RateLimitError, String(e));
  assert.equal(e.headers.get('retry-after'), '1');
});

let failed = 0;
for (const [name, fn] of checks) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}
if (failed > 0) {
  console.log(`node: ${failed} of ${checks.length} checks failed`);
  process.exit(1);
}
console.log(`node: all checks passed (${checks.length})`);
