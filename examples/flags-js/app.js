// A Node.js app that reads its feature flags the way docs/flags.md says: the OpenFeature server
// SDK with the flagd provider in in-process file mode, the document's path in
// FLAGD_OFFLINE_FLAG_SOURCE_PATH (what a FlagSet's `featureFlags.fileEnv` sets by default).
// GET /?user=KEY answers {"greeting": ...}, "hello, new world" when new-greeting is on for KEY.
'use strict';

const http = require('node:http');
const { OpenFeature } = require('@openfeature/server-sdk');
const { FlagdProvider } = require('@openfeature/flagd-provider');

async function main() {
  // Wait for the provider: before it is ready every evaluation answers the caller's default.
  await OpenFeature.setProviderAndWait(new FlagdProvider({
    resolverType: 'in-process',
    offlineFlagSourcePath: process.env.FLAGD_OFFLINE_FLAG_SOURCE_PATH,
  }));
  const client = OpenFeature.getClient('my-app');

  const server = http.createServer(async (req, res) => {
    const userId = new URL(req.url, 'http://app').searchParams.get('user') ?? '';
    const on = await client.getBooleanValue('new-greeting', false, { targetingKey: userId });
    const body = JSON.stringify({ greeting: on ? 'hello, new world' : 'hello' });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });

  const stop = async () => {
    server.close();
    await OpenFeature.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
    console.log(`listening on ${server.address().port}`);
  });
}

main().catch((err) => {
  console.error(`flags-js: ${err.message ?? err}`);
  process.exit(1);
});
