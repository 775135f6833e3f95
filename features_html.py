"""The "features and attribution graphs" report section: plain words around computed numbers.
Every number comes from the results dict of `features.features_section`; nothing is typed in."""
import html


def pct(x):
    return f"{100 * x:.1f}%"


def ci(c):
    return f"95% CI {pct(c[0])}–{pct(c[1])}"


def rate_line(name, r, what):
    if not r["n"]:
        return f"<li><b>{name}: not testable</b> — no prompt had a planned-word feature to act on ({what})</li>"
    return f"<li><b>{name}: {pct(r['rate'])}</b> ({r['k']} of {r['n']}, {ci(r['ci'])}) — {what}</li>"


def section_html(results, viewer):
    t, g, f = results["transcoder"], results["graph"], results["features"]
    m = g["mean_over_prompts"]
    site = results["site"]
    c = f["counts"]
    per_layer = ", ".join(f"{x:.1f}" for x in t["l0_per_layer"])
    fvu_layer = ", ".join(f"{x:.3f}" for x in t["fvu_per_layer"])
    where = f"the <code>{html.escape(site['position'])}</code> token at layer {site['layer']}"
    examples = "".join(
        f"<li><code>{html.escape(e['line1'])}</code><br>model: <code>{html.escape(e['line2'])}</code>; "
        f"planned-word features off: <code>{html.escape(e['suppressed'])}</code>; "
        f"'{html.escape(e['injected_word'] or '')}' injected: <code>{html.escape(e['injected'])}</code></li>"
        for e in f["examples"][:3])
    by_layer = ", ".join(f"layer {l}: {pct(r['rate'] or 0)} (n={r['n']})" for l, r in f["rate_by_layer"].items())
    site_feats = "".join(f"<li>L{site['layer']} #{k}: {html.escape(v)}</li>"
                         for k, v in f["featured_site_features"].items()) or "<li>none</li>"
    return f"""<section id="features">
<h2>Features and attribution graphs</h2>
<p>The model's neurons are hard to read one by one, so we train a second, small network — a
<b>cross-layer transcoder (CLT)</b> — to imitate every MLP of the model with a few
<em>features</em> that are active at a time. A feature of layer <i>l</i> reads the residual stream
where the MLP of layer <i>l</i> reads it and writes into the MLP outputs of layer <i>l</i> and every
later layer. It was trained on {t['train_tokens']} tokens of training couplets in
{t['train_seconds']:.0f} s with {t['n_features_per_layer']} features per layer; the loss is
reconstruction error plus a penalty on how many features fire.</p>
<ul>
<li><b>Fraction of variance unexplained (FVU): {t['fvu']:.3f}</b> (per layer {fvu_layer}) — the share of the
MLP outputs' variation on held-out couplets the CLT misses; 0 is perfect.</li>
<li><b>L0: {t['l0']:.1f}</b> features active per token and layer (per layer {per_layer}) — small means
each token is explained by a handful of features.</li>
<li><b>Dead features: {pct(t['dead_fraction'])}</b> never fire on {t['eval_tokens']} held-out tokens.</li>
<li><b>Loss recovered: {t['loss_recovered']:.3f}</b> — next-token loss with every MLP replaced by the CLT
({t['loss_clt']:.3f}) placed between the real model ({t['loss_clean']:.3f}, score 1) and the model with
all MLPs zeroed ({t['loss_zero_mlp']:.3f}, score 0).</li>
</ul>
<h3>An attribution graph</h3>
<p>For one prompt we freeze what is nonlinear outside the MLPs (attention patterns and LayerNorm
scales) and replace each MLP by its CLT features plus an <b>error node</b> holding whatever the CLT gets
wrong on this prompt. That <em>local replacement model</em> gives exactly the model's logits, and it is
linear from feature to feature, so every feature's input splits exactly into contributions from
tokens, earlier features and errors: the edges of the graph. We target the logit of the word that ends
line 2, at the position just before it. Pruning keeps the nodes that carry 80% of the influence on that
logit and the edges that carry 98%.</p>
<p>Prompt: <code>{html.escape(g['prompt'])}</code> → line 2 <code>{html.escape(g['line2'])}</code>.
The graph has {g['n_active_features']} active features; pruned, {g['n_nodes']} nodes and
{g['n_edges']} edges, built in {g['seconds']:.2f} s.
<b>Replacement score {g['replacement_score']:.2f}</b> (share of the influence reaching the logit that
comes from the input tokens rather than error nodes) and <b>completeness {g['completeness_score']:.2f}</b>
(how much of each node's input, weighted by influence, comes from explained nodes). Over
{g['n_prompts_for_mean']} held-out prompts: replacement {m['replacement_score']:.2f}, completeness
{m['completeness_score']:.2f}, {m['n_nodes']:.0f} nodes, {m['seconds']:.2f} s per graph. Public figures
for a large model are about 0.70 and 0.92.</p>
{viewer}
<h3>Planned-word features at {where}</h3>
<p>A feature active at the site is a <b>planned-word feature</b> for the ending the model writes when
switching it off (inside the real model, at the site only) lowers that ending's logit at the end of
line 2 by at least one logit, and by at least half a logit more than the logit of every rival word that
shares the ending's rhyme or its meaning. A feature that only says "rhymes with -at" or "an animal"
lowers all its rivals too, so it does not count: the test asks for a representation of the word
itself. Planned-word features at the site of the prompt above:</p><ul>{site_feats}</ul>
<ul>
{rate_line("Prompts with a planned-word feature for the ending the model writes",
           c['planned_word_prompt_rate'], "the big study found such features in about half of its poems.")}
{rate_line("Suppression", c['suppression_rate'],
           "share of prompts whose line 2 ends with another valid ending once every feature known to plan "
           "the original ending is clamped to 0 at the site.")}
{rate_line("Injection", c['injection_rate'],
           "share of prompts whose line 2 ends with a word from another rhyme family after its planned-word "
           "features are clamped on at the site (and the original ending's switched off); the big study "
           "reported 70% of 25 poems.")}
</ul>
<p>The same search at the <code>{html.escape(site['position'])}</code> token in every layer: {by_layer}.</p>
<p>Examples:</p><ul>{examples}</ul>
<p>Feature labels are made by a rule from each feature's top-activating held-out tokens and its top
output tokens (decoders summed over the layers it writes to, through the unembedding); none is typed by
hand. This section took {results['seconds']:.0f} s.</p>
</section>"""
