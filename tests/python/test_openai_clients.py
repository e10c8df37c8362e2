"""The official OpenAI clients, unmodified, against `frugal serve` on the bundled cascade: the
`openai` Python package here and the `openai` npm package through tests/node/openai_client_test.mjs.
Chat and completions, streamed and not, logprobs and top_logprobs, usage with
stream_options.include_usage, the frugal object and headers, and errors raised as each client's
own exception types (NotFoundError, BadRequestError, AuthenticationError, RateLimitError)."""
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import openai
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_DIR = os.path.join(REPO_ROOT, 'tests', 'node')
KEY = 'sk-frugal-test-key'
KEYS_ENV = 'FRUGAL_TEST_API_KEYS'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def bundled_config(directory, server_table):
    """frugal.toml with its model paths made absolute and a [server] table appended."""
    with open(os.path.join(REPO_ROOT, 'frugal.toml')) as f:
        text = f.read()
    text = text.replace('model = "models/', f'model = "{REPO_ROOT}/models/')
    path = os.path.join(directory, 'frugal.toml')
    with open(path, 'w') as f:
        f.write(text + '\n[server]\n' + server_table)
    return path


class Serve:
    """`frugal serve` as a subprocess on a free loopback port, until stop()."""

    def __init__(self, binary, directory, server_table='', args=(), env=None):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log_path = os.path.join(directory, f'serve-{self.port}.log')
        config = bundled_config(directory, server_table)
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(
            [binary, 'serve', '--config', config, '--port', str(self.port), '--threads', '2', *args],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, **(env or {})})
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + '/health', timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                pytest.fail(f'frugal serve did not start:\n{self.output()}')
            time.sleep(0.05)

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        """SIGTERM: the server drains and exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope='module')
def server(frugal_bin, tmp_path_factory):
    """The bundled cascade with one API key, read from an environment variable the config names."""
    s = Serve(frugal_bin, str(tmp_path_factory.mktemp('serve')), f'api_keys_env = "{KEYS_ENV}"\n',
              env={KEYS_ENV: KEY})
    yield s
    assert s.stop() == 0, s.output()


@pytest.fixture(scope='module')
def busy_server(frugal_bin, tmp_path_factory):
    """A server whose schedulers queue nothing: every completion request is answered 429."""
    s = Serve(frugal_bin, str(tmp_path_factory.mktemp('busy')), args=('--max-queue', '0'))
    yield s
    assert s.stop() == 0, s.output()


def client(server, api_key=KEY):
    # No retries: a 429 or 5xx must reach the test as the client's exception, not be retried.
    return openai.OpenAI(base_url=server.url + '/v1', api_key=api_key, max_retries=0, timeout=60)


def chat_messages(content):
    return [{'role': 'user', 'content': content}]


# ----------------------------------------------------------------------------- chat


def test_chat_answers_with_usage_headers_and_the_frugal_object(server):
    raw = client(server).chat.completions.with_raw_response.create(
        model='frugal', messages=chat_messages('What is 12 + 30?'), max_tokens=32, user='py')
    r = raw.parse()
    assert r.object == 'chat.completion'
    assert r.model == 'frugal'
    choice = r.choices[0]
    assert choice.message.role == 'assistant'
    assert choice.message.content
    assert choice.finish_reason == 'stop'
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert isinstance(r.usage.prompt_tokens_details.cached_tokens, int)
    frugal = r.model_extra['frugal']
    assert frugal['tier'] in ('small', 'large')
    assert raw.headers['x-frugal-tier'] == frugal['tier']
    assert float(raw.headers['x-frugal-score']) == pytest.approx(frugal['score'], abs=1e-6)
    assert float(raw.headers['x-frugal-cost']) == pytest.approx(frugal['cost'], rel=1e-6)
    assert frugal['escalated'] == (frugal['tier'] == 'large')


def test_chat_stream_with_include_usage_matches_the_whole_answer(server):
    c = client(server)
    messages = chat_messages('Reverse the word "garden".')
    whole = c.chat.completions.create(model='frugal', messages=messages, max_tokens=32)
    chunks = list(c.chat.completions.create(model='frugal', messages=messages, max_tokens=32,
                                            stream=True, stream_options={'include_usage': True}))
    text = ''.join(ch.choices[0].delta.content or '' for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    finishing = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert [ch.choices[0].finish_reason for ch in finishing] == ['stop']
    # The second, identical request is the response cache's.
    assert finishing[0].model_extra['frugal']['tier'] == 'cache'
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.prompt_tokens_details.cached_tokens == whole.usage.prompt_tokens


def test_chat_logprobs_and_top_logprobs(server):
    r = client(server).chat.completions.create(
        model='small', messages=chat_messages('What is 5 + 9?'), max_tokens=16, logprobs=True,
        top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content
    for t in content:
        assert t.logprob <= 0
        assert len(t.top_logprobs) == 3
        assert bytes(t.bytes).decode('utf-8', 'replace') == t.token
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob
    assert ''.join(t.token for t in content).startswith(r.choices[0].message.content)


# ----------------------------------------------------------------------------- completions


def test_completions_streamed_and_not_with_logprobs(server):
    c = client(server)
    kw = dict(model='large', prompt='What is', max_tokens=12, logprobs=2)
    whole = c.completions.create(**kw)
    assert whole.object == 'text_completion'
    lp = whole.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == whole.usage.completion_tokens
    assert all(len(top) <= 2 for top in lp.top_logprobs)
    chunks = list(c.completions.create(**kw, stream=True, stream_options={'include_usage': True}))
    assert ''.join(ch.choices[0].text for ch in chunks if ch.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_models_list(server):
    assert [m.id for m in client(server).models.list()] == ['frugal', 'small', 'large']


# ----------------------------------------------------------------------------- errors


def test_errors_are_the_clients_own_exception_types(server, busy_server):
    c = client(server)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model='gpt-4o', messages=chat_messages('hi'))
    assert e.value.code == 'model_not_found' and e.value.param == 'model'
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model='frugal', messages=chat_messages('hi'), n=2)
    assert e.value.param == 'n'
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model='frugal', messages=[])
    assert e.value.param == 'messages'
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model='frugal', messages=chat_messages('Sort 4 9 1 7. ' * 60))
    assert e.value.code == 'context_length_exceeded'
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model='frugal', messages=chat_messages('hi'), top_logprobs=2)
    assert e.value.param == 'top_logprobs'
    with pytest.raises(openai.AuthenticationError) as e:
        client(server, api_key='sk-wrong').chat.completions.create(
            model='frugal', messages=chat_messages('hi'))
    assert e.value.code == 'invalid_api_key'
    with pytest.raises(openai.RateLimitError) as e:
        client(busy_server).chat.completions.create(model='frugal', messages=chat_messages('hi'))
    assert e.value.response.headers['retry-after'] == '1'
    with pytest.raises(openai.RateLimitError):
        list(client(busy_server).completions.create(model='frugal', prompt='hi', stream=True))
    with pytest.raises(openai.APIStatusError) as e:
        c.completions.create(model='frugal', prompt='a' * (2 << 20))
    assert e.value.status_code == 413


# ----------------------------------------------------------------------------- node


def test_the_openai_npm_package(server, busy_server):
    """tests/node/openai_client_test.mjs: the same checks through the npm client."""
    node = shutil.which('node')
    assert node, 'node is not installed (scripts/install.sh)'
    assert os.path.isdir(os.path.join(NODE_DIR, 'node_modules', 'openai')), \
        'the openai npm package is not installed: run scripts/install.sh (npm ci in tests/node)'
    r = subprocess.run([node, os.path.join(NODE_DIR, 'openai_client_test.mjs'), server.url, KEY,
                        busy_server.url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'node: all checks passed' in r.stdout, r.stdout
