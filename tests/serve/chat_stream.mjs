// chat_stream.mjs URL API_KEY - stream a chat completion from helix with the official openai
// package, then make one plain completion; print a JSON summary for t0503 to check.
import OpenAI from 'openai';

const [url, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60000 });

const stream = await client.chat.completions.create({
  model: 'kjv-llama-6m',
  messages: [{ role: 'user', content: 'In the beginning' }],
  max_tokens: 24,
  temperature: 0,
  stream: true,
});
let text = '';
let chunks = 0;
let finish = null;
for await (const chunk of stream) {
  chunks++;
  const c = chunk.choices[0];
  if (c?.delta?.content) text += c.delta.content;
  if (c?.finish_reason) finish = c.finish_reason;
}
const r = await client.completions.create({
  model: 'kjv-llama-6m',
  prompt: 'In the beginning',
  max_tokens: 16,
  temperature: 0,
});
const models = await client.models.list();
console.log(JSON.stringify({
  text, chunks, finish,
  completion: r.choices[0].text,
  usage: r.usage,
  models: models.data.map((m) => m.id),
}));
