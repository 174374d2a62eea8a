// Converts one file to a transfer syntax with the built engine (dist/) and prints the seconds
// taken and the bytes produced: {"seconds": s, "bytes": n}. Used by bench-transcode.sh.
import { convertInstance } from '../dist/transcode/convertInstance.js';

const [file, ts] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
let bytes = 0;
for await (const chunk of (await convertInstance(file, ts)).dataSet()) bytes += chunk.length;
console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, bytes }));
