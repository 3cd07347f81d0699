// The reference for ledger_service/core/merkle.py: what npm's @openzeppelin/merkle-tree makes of the same
// leaves. Reads one JSON request per line on stdin and writes one JSON answer per line on stdout, so one
// node process serves a whole hypothesis run (tests/ledger_service/core/test_merkle_reference.py).
//
// {"values": [...], "encoding": [...], "multi": [[value indices], ...]}
//   -> {"root", "tree", "treeIndices", "leafHashes", "proofs", "multiProofs": [{"leaves", "proof", "proofFlags"}]}
// {"dump": <standard-v1 dump>, "proofs": [[hex, ...] per value]}
//   -> {"root", "verified": [bool per value]}   (the dump loaded and validated, each proof checked)
// A request the library refuses -> {"error": message}.
"use strict";

const readline = require("node:readline");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

function build(request) {
  const tree = StandardMerkleTree.of(request.values, request.encoding);
  const dump = tree.dump();
  return {
    root: tree.root,
    tree: dump.tree,
    treeIndices: dump.values.map((v) => v.treeIndex),
    leafHashes: request.values.map((v) => tree.leafHash(v)),
    proofs: request.values.map((_, i) => tree.getProof(i)),
    multiProofs: (request.multi || []).map((indices) => {
      const multi = tree.getMultiProof(indices);
      return { leaves: multi.leaves.map((v) => tree.leafHash(v)), proof: multi.proof, proofFlags: multi.proofFlags };
    }),
  };
}

function load(request) {
  const tree = StandardMerkleTree.load(request.dump);
  tree.validate();
  const encoding = request.dump.leafEncoding;
  return {
    root: tree.root,
    verified: request.dump.values.map((entry, i) =>
      StandardMerkleTree.verify(tree.root, encoding, entry.value, request.proofs[i]),
    ),
  };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let answer;
  try {
    const request = JSON.parse(line);
    answer = request.dump ? load(request) : build(request);
  } catch (error) {
    answer = { error: String(error && error.message ? error.message : error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
