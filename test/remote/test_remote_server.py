"""The policy server over real HTTP (uvicorn on 127.0.0.1): /act, /v1/predict, limits, auth."""

from __future__ import annotations

import base64
import io
import json

import httpx
import json_numpy
import numpy as np
from PIL import Image
import pytest
from remote_helpers import images, INSTRUCTIONS

from openvla_ros.remote.protocol import encode_array, Limits
from openvla_ros.remote.server import is_loopback, ServerSettings


def _official_post(url: str, payload: dict, **kwargs) -> httpx.Response:
    """What deploy.py's client sends: ``requests.post(url, json=payload)`` after
    ``json_numpy.patch()``, i.e. the json_numpy text of the dict as a JSON body."""
    return httpx.post(
        url,
        content=json_numpy.dumps(payload, allow_nan=False),
        headers={'Content-Type': 'application/json', **kwargs.pop('headers', {})},
        timeout=30,
        **kwargs,
    )


def _png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG')
    return base64.b64encode(buffer.getvalue()).decode()


def test_act_answers_an_official_client_request_with_the_policy_action(server, policy) -> None:
    image = images(1, seed=1)[0]
    response = _official_post(
        f'{server.url}/act',
        {'image': image, 'instruction': INSTRUCTIONS[0], 'unnorm_key': 'bridge_orig'},
    )
    assert response.status_code == 200
    # deploy.py returns the bare json_numpy-encoded action (no wrapping object).
    action = json_numpy.loads(response.text)
    assert isinstance(action, np.ndarray) and action.shape == (7,) and action.dtype == np.float64
    expected = policy.predict(image, INSTRUCTIONS[0], 'bridge_orig').action
    np.testing.assert_allclose(action, expected, rtol=0, atol=1e-12)


def test_act_answers_a_double_encoded_request_in_kind(server, policy) -> None:
    image = images(1, seed=2)[0]
    inner = json_numpy.dumps(
        {'image': image, 'instruction': INSTRUCTIONS[1], 'unnorm_key': 'fractal20220817_data'}
    )
    response = httpx.post(f'{server.url}/act', json={'encoded': inner}, timeout=30)
    assert response.status_code == 200
    action = json_numpy.loads(response.json())
    expected = policy.predict(image, INSTRUCTIONS[1], 'fractal20220817_data').action
    np.testing.assert_allclose(action, expected, rtol=0, atol=1e-12)


def test_act_errors_answer_deploy_py_error_string_with_a_status_and_reason(server) -> None:
    response = _official_post(
        f'{server.url}/act', {'image': images(1)[0], 'instruction': 'do something'}
    )
    assert response.status_code == 400
    assert response.json() == 'error'
    assert 'bridge_orig' in response.headers['x-openvla-error']


def test_predict_returns_action_tokens_latency_and_model_info(server, policy) -> None:
    image = images(1, seed=3)[0]
    body = {
        'image': encode_array(image),
        'instruction': INSTRUCTIONS[2],
        'unnorm_key': 'bridge_orig',
        'request_id': 'r-1',
    }
    response = httpx.post(f'{server.url}/v1/predict', json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = policy.predict(image, INSTRUCTIONS[2], 'bridge_orig')
    np.testing.assert_allclose(answer['action'], expected.action, rtol=0, atol=1e-12)
    np.testing.assert_allclose(answer['normalized_action'], expected.normalized_action)
    assert tuple(answer['tokens']) == expected.tokens
    assert answer['request_id'] == 'r-1'
    assert answer['unnorm_key'] == 'bridge_orig'
    assert answer['batch_size'] == 1
    latency = answer['latency']
    assert 0 <= latency['queue_s'] <= latency['total_s'] and latency['model_s'] > 0
    assert answer['model']['action_dim'] == 7
    assert answer['model']['unnorm_keys'] == ['bridge_orig', 'fractal20220817_data']


def test_predict_accepts_png_bytes_as_base64_and_gives_the_same_action(server) -> None:
    image = images(1, seed=4)[0]
    answers = [
        httpx.post(
            f'{server.url}/v1/predict',
            json={'image': encoded, 'instruction': 'wipe', 'unnorm_key': 'bridge_orig'},
            timeout=30,
        ).json()
        for encoded in (
            encode_array(image),
            _png_b64(image),
            'data:image/png;base64,' + _png_b64(image),
        )
    ]
    assert answers[0]['tokens'] == answers[1]['tokens'] == answers[2]['tokens']


def test_health_and_info_describe_the_ready_model(server) -> None:
    health = httpx.get(f'{server.url}/health')
    assert health.status_code == 200 and health.json()['status'] == 'ready'
    info = httpx.get(f'{server.url}/v1/info').json()
    assert info['default_unnorm_key'] is None  # two datasets: each request names one
    assert info['max_batch'] == 8


def test_health_says_loading_with_503_until_the_policy_is_set(serve, policy) -> None:
    running = serve(None)
    response = httpx.get(f'{running.url}/health')
    assert response.status_code == 503 and response.json()['status'] == 'loading'
    act = _official_post(f'{running.url}/act', {'image': images(1)[0], 'instruction': 'x'})
    assert act.status_code == 503 and 'loading' in act.headers['x-openvla-error']
    running.app.state.runtime.set_policy(policy)
    assert httpx.get(f'{running.url}/health').json()['status'] == 'ready'


def test_server_default_unnorm_key_applies_when_a_request_names_none(serve, policy) -> None:
    running = serve(policy, ServerSettings(unnorm_key='fractal20220817_data'))
    image = images(1, seed=5)[0]
    response = _official_post(f'{running.url}/act', {'image': image, 'instruction': 'wipe'})
    expected = policy.predict(image, 'wipe', 'fractal20220817_data').action
    np.testing.assert_allclose(json_numpy.loads(response.text), expected, rtol=0, atol=1e-12)


def test_unknown_unnorm_key_gets_400_listing_the_keys(server) -> None:
    body = {'image': encode_array(images(1)[0]), 'instruction': 'wipe', 'unnorm_key': 'nope'}
    response = httpx.post(f'{server.url}/v1/predict', json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()['error'] == 'unknown_unnorm_key'
    assert 'bridge_orig' in response.json()['detail']
    assert 'fractal20220817_data' in response.json()['detail']


def _bad_requests() -> list[tuple[str, bytes | dict, int, str]]:
    good = encode_array(images(1, size=(32, 32))[0])
    big = np.zeros((64, 65, 3), np.uint8)  # 4160 pixels: over the test limit of 4096
    fake_shape = dict(encode_array(np.zeros((2, 2, 3), np.uint8)), shape=[5000, 5000, 3])
    return [
        ('not json', b'{"image": ', 400, 'bad_json'),
        ('a list', b'[1, 2]', 400, 'bad_request'),
        ('no instruction', {'image': good}, 422, 'missing_instruction'),
        ('empty instruction', {'image': good, 'instruction': '  '}, 422, 'bad_instruction'),
        ('long instruction', {'image': good, 'instruction': 'a' * 201}, 422, 'bad_instruction'),
        ('number instruction', {'image': good, 'instruction': 3}, 422, 'bad_instruction'),
        (
            'typo field',
            {'image': good, 'instruction': 'x', 'unnorm-key': 'a'},
            422,
            'unknown_field',
        ),
        (
            'too many pixels',
            {'image': encode_array(big), 'instruction': 'x'},
            413,
            'payload_too_large',
        ),
        ('lying shape', {'image': fake_shape, 'instruction': 'x'}, 413, 'payload_too_large'),
        (
            'float image',
            {'image': encode_array(np.zeros((4, 4, 3))), 'instruction': 'x'},
            422,
            'bad_image',
        ),
        (
            'gray image',
            {'image': encode_array(np.zeros((4, 4), np.uint8)), 'instruction': 'x'},
            422,
            'bad_image',
        ),
        ('object dtype', {'image': dict(good, dtype='|O'), 'instruction': 'x'}, 400, 'bad_array'),
        (
            'short data',
            {'image': dict(good, shape=[9, 9, 3]), 'instruction': 'x'},
            400,
            'bad_array',
        ),
        ('not base64', {'image': '***', 'instruction': 'x'}, 400, 'bad_image'),
        (
            'not an image',
            {'image': base64.b64encode(b'hello').decode(), 'instruction': 'x'},
            422,
            'bad_image',
        ),
        ('huge body', b'"' + b'a' * 300_000 + b'"', 413, 'payload_too_large'),
    ]


@pytest.mark.parametrize(
    'name,body,status,code', _bad_requests(), ids=[r[0] for r in _bad_requests()]
)
def test_bad_predict_payloads_get_4xx_and_the_server_keeps_serving(
    serve, policy, name, body, status, code
) -> None:
    limits = Limits(max_body_bytes=200_000, max_image_pixels=4096, max_instruction_chars=200)
    running = serve(policy, ServerSettings(limits=limits, unnorm_key='bridge_orig'))
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f'{running.url}/v1/predict', content=content, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()['error'] == code
    good = {'image': encode_array(images(1, size=(32, 32))[0]), 'instruction': 'wipe'}
    assert httpx.post(f'{running.url}/v1/predict', json=good, timeout=30).status_code == 200


def test_bad_act_payloads_get_4xx_and_the_server_keeps_serving(server) -> None:
    cases = [
        (b'nonsense', 400),
        (json_numpy.dumps({'image': np.zeros((8, 8, 3), np.float32), 'instruction': 'x'}), 422),
        (json_numpy.dumps({'instruction': 'x'}), 422),
        (json.dumps({'encoded': 'x', 'other': 1}), 400),
    ]
    for content, status in cases:
        response = httpx.post(f'{server.url}/act', content=content, timeout=30)
        assert (response.status_code, response.json()) == (status, 'error')
    ok = _official_post(
        f'{server.url}/act',
        {'image': images(1)[0], 'instruction': 'wipe', 'unnorm_key': 'bridge_orig'},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    'headers,detail',
    [({}, 'missing bearer token'), ({'Authorization': 'Bearer nope'}, 'wrong bearer token')],
    ids=['missing', 'wrong'],
)
def test_a_missing_or_wrong_token_gets_401(serve, policy, headers, detail) -> None:
    running = serve(policy, ServerSettings(token='s3cret', unnorm_key='bridge_orig'))
    body = {'image': encode_array(images(1)[0]), 'instruction': 'wipe'}
    response = httpx.post(f'{running.url}/v1/predict', json=body, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json()['error'] == 'unauthorized'
    assert detail in response.json()['detail']
    act = _official_post(
        f'{running.url}/act', {'image': images(1)[0], 'instruction': 'x'}, headers=headers
    )
    assert act.status_code == 401 and act.json() == 'error'
    assert httpx.get(f'{running.url}/metrics', headers=headers).status_code == 401
    assert httpx.get(f'{running.url}/health').status_code == 200  # load balancers need no token
    good = httpx.post(
        f'{running.url}/v1/predict',
        json=body,
        headers={'Authorization': 'Bearer s3cret'},
        timeout=30,
    )
    assert good.status_code == 200


def test_metrics_count_requests_errors_and_batch_sizes(serve, policy) -> None:
    running = serve(policy, ServerSettings(unnorm_key='bridge_orig'))
    body = {'image': encode_array(images(1)[0]), 'instruction': 'wipe'}
    httpx.post(f'{running.url}/v1/predict', json=body, timeout=30)
    httpx.post(f'{running.url}/v1/predict', content=b'nope', timeout=30)
    snap = httpx.get(f'{running.url}/metrics').json()
    assert snap['responses_by_status'] == {'200': 1, '400': 1}
    assert snap['errors_total'] == 1
    assert snap['batch_size_histogram']['1'] == 1
    assert snap['latency_window']['total']['count'] == 1
    text = httpx.get(f'{running.url}/metrics?format=prometheus').text
    assert 'openvla_batch_size_bucket{le="1"} 1' in text
    assert text.startswith('# HELP') and 'openvla_latency_seconds' in text
    assert httpx.get(f'{running.url}/metrics?format=xml').status_code == 422


def test_is_loopback_knows_local_addresses() -> None:
    assert is_loopback('127.0.0.1') and is_loopback('::1') and is_loopback('localhost')
    assert not is_loopback('0.0.0.0') and not is_loopback('192.168.1.5')
