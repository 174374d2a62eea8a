// Counted words in messages: "1 file", "2 files", never "1 files" or "file(s)".

/** `n` and the word in the number it takes: plural(1, 'study', 'studies') is "1 study". */
export function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}
