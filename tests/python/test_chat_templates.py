"""Frugal's Jinja interpreter against Python's jinja2 on the real chat templates of
tests/fixtures/chat_templates (SOURCES.md says where each came from).

The reference is jinja2's ImmutableSandboxedEnvironment set up as transformers'
apply_chat_template does (trim_blocks and lstrip_blocks on, loop controls, raise_exception,
strftime_now, and its tojson, which neither escapes HTML nor sorts keys). Every template renders
every conversation below, with and without the generation prompt: where jinja2 renders, Frugal's
`frugal template` must print the same bytes; where the template raises (role alternation, no
system role), Frugal must refuse with the template's own message; where jinja2 fails otherwise,
Frugal must fail too.
"""
import datetime
import json
import os
import subprocess

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures',
                        'chat_templates')
TEMPLATES = sorted(f[:-len('.jinja')] for f in os.listdir(FIXTURES) if f.endswith('.jinja'))
NOW = 1700000000  # strftime_now's clock on both sides

TOOL = {
    'type': 'function',
    'function': {
        'name': 'get_weather',
        'description': 'Weather of a "city", in °C',
        'parameters': {'type': 'object', 'properties': {'city': {'type': 'string'}},
                       'required': ['city']},
    },
}

SPECIAL = 'quotes \' and " and \\ backslash, {{ braces }} {% tags %} {# hash #}, <|im_end|> & <b>'
UNICODE = 'héllo wörld — 中文 🎉 ½\u00a0nbsp\u3000ideographic\ttab'


def conversations():
    """(name, messages, extra variables): plain chats, edge-case content, tools, reasoning."""
    sys = {'role': 'system', 'content': 'You are a terse assistant.'}
    u1 = {'role': 'user', 'content': 'Hi there'}
    a1 = {'role': 'assistant', 'content': 'Hello! How can I help?'}
    u2 = {'role': 'user', 'content': 'What is 2+2?'}
    yield 'single_user', [u1], {}
    yield 'system_user', [sys, u1], {}
    yield 'multi_turn', [u1, a1, u2], {}
    yield 'system_multi_turn', [sys, u1, a1, u2], {}
    yield 'ends_with_assistant', [sys, u1, a1], {}
    yield 'special_chars', [{'role': 'user', 'content': SPECIAL}, {'role': 'assistant', 'content': SPECIAL}, u2], {}
    yield 'unicode', [{'role': 'system', 'content': UNICODE}, {'role': 'user', 'content': UNICODE}], {}
    yield 'newlines_and_spaces', [{'role': 'user', 'content': '  line one\n\nline two\n  '},
                                  {'role': 'assistant', 'content': '\n\tindented\n'},
                                  {'role': 'user', 'content': '\u3000 wide spaces \u00a0'}], {}
    yield 'empty_content', [{'role': 'system', 'content': ''}, {'role': 'user', 'content': ''}], {}
    yield 'long', [{'role': 'user', 'content': 'word ' * 2000}], {}
    yield 'two_users', [u1, u2], {}
    yield 'starts_with_assistant', [a1, u1], {}
    yield 'think', [u1, {'role': 'assistant', 'content': '<think>\nreasoning here\n</think>\n\nThe answer.'}, u2], {}
    yield 'think_last', [u1, {'role': 'assistant', 'content': '<think>\nhmm\n</think>\n\nDone.'}], {}
    yield 'enable_thinking_off', [u1], {'enable_thinking': False}
    yield 'date_string', [u1], {'date_string': '01 Jan 2030'}
    call = {'id': 'call00001', 'type': 'function',
            'function': {'name': 'get_weather', 'arguments': {'city': 'Paris'}}}
    call_s = {'id': 'call00001', 'type': 'function',
              'function': {'name': 'get_weather', 'arguments': '{"city": "Paris"}'}}
    asking = {'role': 'user', 'content': 'Weather in Paris?'}
    result = {'role': 'tool', 'tool_call_id': 'call00001', 'content': '{"temp": 21}'}
    yield 'tools_offered', [sys, asking], {'tools': [TOOL]}
    yield 'tools_offered_no_system', [asking], {'tools': [TOOL]}
    yield 'tool_call_dict_args', [asking, {'role': 'assistant', 'content': None, 'tool_calls': [call]}, result], {'tools': [TOOL]}
    yield 'tool_call_string_args', [asking, {'role': 'assistant', 'content': None, 'tool_calls': [call_s]}, result], {'tools': [TOOL]}
    yield 'tool_call_then_answer', [sys, asking, {'role': 'assistant', 'content': '', 'tool_calls': [call]}, result,
                                    {'role': 'assistant', 'content': 'It is 21 °C.'}], {'tools': [TOOL]}
    yield 'tools_in_system_llama', [sys, asking], {'tools': [TOOL], 'tools_in_user_message': False}


CONVERSATIONS = list(conversations())


def reference_env(trim_blocks=True, lstrip_blocks=True):
    env = ImmutableSandboxedEnvironment(trim_blocks=trim_blocks, lstrip_blocks=lstrip_blocks,
                                        extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env.filters['tojson'] = tojson
    env.globals['raise_exception'] = raise_exception
    env.globals['strftime_now'] = lambda fmt: datetime.datetime.fromtimestamp(NOW).strftime(fmt)
    return env


def reference(source, messages, extra, add_generation_prompt, env):
    """('ok', text) | ('raised', message) | ('error', description)."""
    try:
        tmpl = env.from_string(source)
        return 'ok', tmpl.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                 bos_token='<s>', eos_token='</s>', **extra)
    except jinja2.exceptions.UndefinedError as e:  # a subclass of TemplateError: check first
        return 'error', f'UndefinedError: {e}'
    except jinja2.exceptions.TemplateSyntaxError as e:
        return 'error', f'TemplateSyntaxError: {e}'
    except jinja2.exceptions.TemplateError as e:
        return 'raised', str(e)
    except Exception as e:  # TypeError and the like from inside the template
        return 'error', f'{type(e).__name__}: {e}'


def frugal(frugal_bin, work_dir, name, messages, extra, add_generation_prompt, jinja2_ws=False):
    conv = os.path.join(work_dir, 'conv.json')
    with open(conv, 'w', encoding='utf-8') as f:
        json.dump({'messages': messages, **extra}, f, ensure_ascii=False)
    cmd = [frugal_bin, 'template', '--file', os.path.join(FIXTURES, name + '.jinja'),
           '--messages', conv, '--bos', '<s>', '--eos', '</s>', '--now', str(NOW)]
    if not add_generation_prompt:
        cmd.append('--no-generation-prompt')
    if jinja2_ws:
        cmd.append('--jinja2-whitespace')
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode('utf-8'), p.stderr.decode('utf-8', 'replace')


def check_case(frugal_bin, work_dir, name, messages, extra, gen, env, jinja2_ws=False):
    with open(os.path.join(FIXTURES, name + '.jinja'), encoding='utf-8') as f:
        source = f.read()
    kind, want = reference(source, messages, extra, gen, env)
    rc, out, err = frugal(frugal_bin, work_dir, name, messages, extra, gen, jinja2_ws)
    where = f'{name}, add_generation_prompt={gen}'
    if kind == 'ok':
        assert rc == 0, f'{where}: jinja2 renders, frugal failed: {err}'
        assert out == want, f'{where}: output differs\n--- jinja2\n{want!r}\n--- frugal\n{out!r}'
    elif kind == 'raised':
        assert rc == 1, f'{where}: the template raises {want!r}, frugal exited {rc}: {out!r} {err}'
        assert f'refused the conversation: {want} (template line' in err, f'{where}: {err}'
    else:
        assert rc == 1, f'{where}: jinja2 fails ({want}), frugal exited {rc}: {out!r}'
    return kind


@pytest.mark.parametrize('name', TEMPLATES)
def test_template_matches_jinja2(frugal_bin, work_dir, name):
    env = reference_env()
    kinds = []
    for conv_name, messages, extra in CONVERSATIONS:
        for gen in (True, False):
            kinds.append(check_case(frugal_bin, work_dir, name, messages, extra, gen, env))
    # The comparison cannot pass vacuously: every template renders most conversations.
    assert kinds.count('ok') >= 10, f'{name}: only {kinds.count("ok")} renders succeeded'


@pytest.mark.parametrize('name', ['llama3.1', 'qwen3', 'mistral-v7-tekken', 'tinyllama-zephyr',
                                  'deepseek-coder', 'gemma3'])
def test_jinja2_default_whitespace(frugal_bin, work_dir, name):
    """With trim_blocks and lstrip_blocks off (jinja2's defaults) the output matches too."""
    env = reference_env(trim_blocks=False, lstrip_blocks=False)
    ok = 0
    for conv_name, messages, extra in CONVERSATIONS[:8]:
        ok += check_case(frugal_bin, work_dir, name, messages, extra, True, env, jinja2_ws=True) == 'ok'
    assert ok >= 4


def test_fixtures_are_documented():
    with open(os.path.join(FIXTURES, 'SOURCES.md'), encoding='utf-8') as f:
        sources = f.read()
    for name in TEMPLATES:
        assert f'`{name}.jinja`' in sources, f'{name}.jinja has no source in SOURCES.md'


SHARED_VOCABS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             '..', 'shared', 'fixtures', 'tokenizer')


def test_model_file_template_and_tokens(frugal_bin, work_dir):
    """frugal template -m renders the GGUF's own template with its own EOS text, as jinja2 does."""
    from gguf import GGUFReader
    path = os.path.join(SHARED_VOCABS, 'qwen2.gguf')
    if not os.path.exists(path):
        pytest.skip('../shared/fixtures/tokenizer/qwen2.gguf is missing')
    r = GGUFReader(path)

    def field(key):
        f = r.fields[key]
        return f.parts[f.data[0]]
    source = bytes(field('tokenizer.chat_template')).decode('utf-8')
    eos = bytes(r.fields['tokenizer.ggml.tokens'].parts[r.fields['tokenizer.ggml.tokens'].data[
        int(field('tokenizer.ggml.eos_token_id')[0])]]).decode('utf-8')
    messages = [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'},
                {'role': 'user', 'content': 'Bye'}]
    want = reference_env().from_string(source).render(messages=messages, add_generation_prompt=True,
                                                      bos_token=eos, eos_token=eos)
    conv = os.path.join(work_dir, 'conv.json')
    with open(conv, 'w') as f:
        json.dump(messages, f)
    p = subprocess.run([frugal_bin, 'template', '-m', path, '--messages', conv, '--which'],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == want
    assert b'chat template: jinja (from the file)' in p.stderr


def test_inspect_says_which_template(frugal_bin):
    with_template = os.path.join(SHARED_VOCABS, 'qwen2.gguf')
    without = os.path.join(SHARED_VOCABS, 'llama-spm.gguf')
    if not (os.path.exists(with_template) and os.path.exists(without)):
        pytest.skip('../shared/fixtures/tokenizer vocabularies are missing')
    out = subprocess.run([frugal_bin, 'inspect', with_template], capture_output=True, timeout=60)
    assert 'chat template: jinja (from the file)' in out.stdout.decode()
    out = subprocess.run([frugal_bin, 'inspect', without], capture_output=True, timeout=60)
    assert 'chat template: named: chatml (the file has no chat template)' in out.stdout.decode()
    j = json.loads(subprocess.run([frugal_bin, 'inspect', with_template, '--json'],
                                  capture_output=True, timeout=60).stdout)
    assert j['chat_template_in_use'] == 'jinja (from the file)'


def test_refusal_and_bad_template_exit_codes(frugal_bin, work_dir):
    conv = os.path.join(work_dir, 'conv.json')
    with open(conv, 'w') as f:
        json.dump([{'role': 'system', 'content': 'x'}, {'role': 'user', 'content': 'y'}], f)
    p = subprocess.run([frugal_bin, 'template', '--file', os.path.join(FIXTURES, 'gemma2.jinja'),
                        '--messages', conv], capture_output=True, timeout=60)
    assert p.returncode == 1 and p.stdout == b''
    assert b'refused the conversation: System role not supported' in p.stderr
    bad = os.path.join(work_dir, 'bad.jinja')
    with open(bad, 'w') as f:
        f.write('{% for m in messages %}\n{{ m.role }')
    p = subprocess.run([frugal_bin, 'template', '--file', bad, '--messages', conv],
                       capture_output=True, timeout=60)
    assert p.returncode == 1
    assert b'template line 2' in p.stderr and b'--chat-template' in p.stderr
