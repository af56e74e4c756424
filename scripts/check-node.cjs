// Runs before every npm script that starts TypeScript (pre* scripts in package.json): the
// entrypoints are .ts files run by Node's type stripping, which older Node versions refuse
// with ERR_UNKNOWN_FILE_EXTENSION before a line of ours runs. Plain CommonJS in old syntax on
// purpose, so that it itself runs on whatever Node is first on PATH.
var fs = require('node:fs');
var path = require('node:path');

var nvmrc = path.join(__dirname, '..', '.nvmrc');
var wanted = Number(String(fs.readFileSync(nvmrc, 'utf8')).trim().replace(/^v/, '').split('.')[0]);
var running = process.versions.node;
var major = Number(running.split('.')[0]);

if (!(major >= wanted)) {
  process.stderr.write(
    [
      'adfleet needs Node.js ' +
        wanted +
        ' (the version in .nvmrc); this is Node.js ' +
        running +
        ' (' +
        process.execPath +
        ').',
      'Node ' +
        wanted +
        ' runs the TypeScript sources directly (type stripping); older versions cannot load .ts files.',
      'Fix: `nvm install && nvm use` in this folder (nvm reads .nvmrc), or put Node.js ' +
        wanted +
        ' first on PATH,',
      'then run the command again.',
      '',
    ].join('\n'),
  );
  process.exit(1);
}
