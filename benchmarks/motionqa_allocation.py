"""How adaptive length allocates tokens: the built-in full model, training-free, on MotionQA's 2,000 test
questions (the generator's test videos, 8 frames each), with per-video K chosen by a relative distortion
target (fraction of variance unexplained, what ``hash_video(max_distortion=)`` uses), by an absolute one
(mean squared error per token, tuned to the same mean K), and fixed K = 8. Runs on the CPU in ~3 minutes.

    python benchmarks/motionqa_allocation.py   # prints one JSON line per allocation
"""
import torch, time, json
import tokendynamics as td
from tokendynamics.models.builtin import load_builtin, DATA, FRAMES
from tokendynamics.data.motionqa import CONTENT_TYPES, make_video, MotionQAConfig
from tokendynamics.data.video import uniform_indices
torch.manual_seed(0)
m = load_builtin("full", "full").eval()
cfg = MotionQAConfig(**DATA)
vids, items = [], []
for i in range(1000):
    raw, _, its = make_video(10 * i + 9, cfg)
    vids.append(torch.from_numpy(raw)[uniform_indices(32, FRAMES)]); items.append(its)
with torch.no_grad():
    feats = torch.cat([torch.stack(m.video_features(vids[j:j + 100])) for j in range(0, 1000, 100)]).float()
print("features", feats.shape, flush=True)
ks = list(range(2, 33))
fvu = torch.stack([td.hash_video(feats, num_tokens=k).distortion() for k in ks], 1)  # [V, len(ks)]
var = ((feats.reshape(1000, -1, feats.shape[-1]) - feats.reshape(1000, -1, feats.shape[-1]).mean(1, keepdim=True)) ** 2).sum(-1).mean(1)  # per-token variance
mse = fvu * var[:, None]
def pick(err, target):
    ok = err <= target
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((1000,), len(ks) - 1))
    return torch.tensor(ks)[first]
def evaluate(kv):
    newline = m.host.model.image_newline
    visual = []
    for v in range(1000):
        h = td.hash_video(feats[v], num_tokens=int(kv[v]))
        visual.append(torch.cat([h.table[0, :int(h.num_tokens[0])].to(newline.dtype), newline[None]]))
    right = {"content": [0, 0], "motion": [0, 0]}
    for v in range(1000):
        picks = m.choose(None, [it.question for it in items[v]], [list(it.options) for it in items[v]],
                         mode="likelihood", visual=[visual[v]] * len(items[v])).picks
        for it, chosen in zip(items[v], picks):
            part = "content" if it.type in CONTENT_TYPES else "motion"
            right[part][0] += chosen == it.answer; right[part][1] += 1
    n = right["content"][1] + right["motion"][1]
    return (right["content"][0] + right["motion"][0]) / n, right["content"][0] / right["content"][1], right["motion"][0] / right["motion"][1]
fixed8 = torch.full((1000,), 8)
rel = pick(fvu, 0.1)
# absolute target with the same mean K as the relative one
lo, hi = 0.0, float(mse.max())
for _ in range(40):
    mid = (lo + hi) / 2
    if pick(mse, mid).float().mean() > rel.float().mean(): lo = mid
    else: hi = mid
ab = pick(mse, hi)
for name, kv in [("fixed K=8", fixed8), ("relative FVU<=0.1", rel), (f"absolute MSE<={hi:.4g}", ab)]:
    t = time.time(); acc = evaluate(kv)
    print(json.dumps(dict(run=name, mean_k=float(kv.float().mean()), min_k=int(kv.min()), max_k=int(kv.max()),
                          overall=acc[0], content=acc[1], motion=acc[2], seconds=round(time.time() - t))), flush=True)
