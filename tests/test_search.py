"""Token selection (`soundformers.generation.search`): the block-wise argmax and top-k and the
chosen tokens' log-probabilities against torch's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundformers.generation.search import ARGMAX_BLOCK, GreedySearch, block_topk, first_argmax


@pytest.mark.parametrize("vocab", [51864, 51865, 4 * ARGMAX_BLOCK, 1000])
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_first_argmax_equals_torch_argmax(vocab, rows):
    gen = torch.Generator().manual_seed(vocab + rows)
    x = torch.randn(rows, vocab, generator=gen)
    assert torch.equal(first_argmax(x), x.argmax(dim=-1))
    x[:, -1] = 9.0  # the maximum in the last (narrower) block
    assert torch.equal(first_argmax(x), x.argmax(dim=-1))
    x[:, ARGMAX_BLOCK + 5] = 9.0  # a tie: the first one counts
    x[:, vocab - 2] = 9.0
    assert torch.equal(first_argmax(x), x.argmax(dim=-1))
    assert first_argmax(x)[0] == ARGMAX_BLOCK + 5
    x[0, vocab // 2] = float("nan")  # NaN counts as the maximum, as in torch
    x[-1, 3 * ARGMAX_BLOCK - 1] = float("nan")
    assert torch.equal(first_argmax(x), x.argmax(dim=-1))
    x.fill_(float("-inf"))
    assert torch.equal(first_argmax(x), x.argmax(dim=-1))


def test_first_argmax_on_views_and_short_rows():
    x = torch.randn(2, 5, 3000)
    last = x[:, -1]  # rows of a (B, T, V) tensor: contiguous within a row
    assert torch.equal(first_argmax(last), last.argmax(dim=-1))
    columns = x[:, :, 7]  # not contiguous along the row: torch's argmax
    assert torch.equal(first_argmax(columns), columns.argmax(dim=-1))
    short = torch.randn(4, 10)
    assert torch.equal(first_argmax(short), short.argmax(dim=-1))


def test_greedy_step_scores_with_log_softmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 51864, generator=gen) * 4
    logits[1, :100] = float("-inf")
    eot = 50256
    logits[2, eot] = 100.0  # row 2 ends now
    finished = torch.tensor([False, False, False, True])
    sums = torch.full((4,), -1.0)
    tokens = GreedySearch(eot).step(logits, finished, sums)
    best = logits.argmax(dim=-1)
    expected = F.log_softmax(logits, dim=-1).gather(1, best[:, None]).squeeze(1)
    assert tokens[:3].tolist() == best[:3].tolist() and tokens[3] == eot
    torch.testing.assert_close(sums[:3], expected[:3] - 1.0, rtol=0, atol=1e-6)
    assert sums[3] == -1.0  # a finished row scores nothing more
    assert finished.tolist() == [False, False, True, True]


@pytest.mark.parametrize("vocab", [51864, 51865, 4 * 6 * ARGMAX_BLOCK, 1000])
@pytest.mark.parametrize("rows", [1, 5])
def test_block_topk_equals_torch_topk(vocab, rows):
    gen = torch.Generator().manual_seed(vocab + rows)
    x = F.log_softmax(torch.randn(rows, vocab, generator=gen) * 4, dim=-1)
    for k in (1, 6):
        values, indices = block_topk(x, k)
        expected = x.topk(k, dim=-1)
        assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)
    x[:, -2:] = 5.0 + torch.arange(2.0)  # the two largest in the last (narrower) block
    x[:, 7] = 4.0  # and the third in the first
    x[:, : vocab // 2] = float("-inf")  # suppressed tokens, as the timestamp rules do
    values, indices = block_topk(x, 6)
    assert indices[:, :2].tolist() == [[vocab - 1, vocab - 2]] * rows
    assert torch.equal(values, x.topk(6, dim=-1).values)
    assert torch.equal(x.gather(1, indices), values)  # indices and values agree


def test_block_topk_on_views_and_short_rows():
    x = torch.randn(2, 5, 3000)
    columns = x[:, :, 7]  # not contiguous along the row: torch's topk
    assert torch.equal(block_topk(columns, 2)[1], columns.topk(2, dim=-1).indices)
    short = torch.randn(4, 100)
    assert torch.equal(block_topk(short, 6)[1], short.topk(6, dim=-1).indices)
