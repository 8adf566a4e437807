"""Serving: the text-to-video pipeline (rewriter -> text encoder -> DiT -> VAE decoder) in one
process (`vidloom generate`) or as a Ray Serve application behind the OpenAI Videos API
(`vidloom serve`, `serve run vidloom.jobs.serve:app`). See docs/serving.md."""
