"""embeddings: a unit vector per input, from the input's length."""

import math

from nexus_platform import Model, NexusContext
from nexus_platform.openai import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage

MODELS = [Model(id="test-embed", created=0, owned_by="platform-tests")]


async def embed(request: EmbeddingRequest, nexus: NexusContext) -> EmbeddingList:
    inputs = request.inputs()
    vectors = [[math.cos(len(each)), math.sin(len(each))] for each in inputs]
    data = [Embedding(index=index, embedding=vector) for index, vector in enumerate(vectors)]
    usage = EmbeddingUsage(prompt_tokens=len(inputs), total_tokens=len(inputs))
    return EmbeddingList(data=data, model=request.model, usage=usage)
