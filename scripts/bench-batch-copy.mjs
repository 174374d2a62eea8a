// A plain synchronous Node read + write copy of a tree: the benchmark's baseline.
import fs from 'node:fs';
import path from 'node:path';
function copy(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copy(s, d);
    else fs.writeFileSync(d, fs.readFileSync(s));
  }
}
copy(process.argv[2], process.argv[3]);
