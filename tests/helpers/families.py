"""A model family that is not in the package, to show that adding one takes one class and one config."""

from lamini_lm.models.families import DecoderOnly


class SeparatedDecoderOnly(DecoderOnly):
    """Decoder-only, with the tokenizer's EOS token between the prompt and the response (a format some
    instruction-tuned models use), in training and in generation alike."""

    def encode(self, tokenizer, prompts, responses, *args, **kwargs):
        return super().encode(tokenizer, [p + tokenizer.eos_token for p in prompts], responses, *args, **kwargs)

    def generate(self, model, tokenizer, prompts, **generate_kwargs):
        return super().generate(model, tokenizer, [p + tokenizer.eos_token for p in prompts], **generate_kwargs)
