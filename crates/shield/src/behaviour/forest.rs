//! A seeded isolation forest (Liu, Ting and Zhou, 2008): the anomaly model.
//!
//! Each tree splits a random sample of clients on a random feature at a random value between
//! that feature's minimum and maximum, until every client stands alone or the tree reaches
//! `ceil(log2(sample))` levels. A client unlike the others is cut off in few splits; the score
//! `2^(-E[depth] / c(sample))` is near 1 for such a client and at or below 0.5 for ordinary ones.
//! No labels are needed, and nothing is assumed about what attacks look like: only that they
//! are few and different.
//!
//! Written here rather than taken from a crate: the available ones draw from an unseeded
//! thread RNG (training must be reproducible: same traffic, same seed, same model), and the
//! whole algorithm is a hundred lines. The model serialises to JSON for `SECURITY_DATA_DIR`.

use serde::{Deserialize, Serialize};

/// SplitMix64: a small, seedable generator of good statistical quality (Steele, Lea and
/// Flood 2014). Cryptographic strength is not needed: the seed is ours, not a secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for sampling (bias below 2^-32 for n < 2^32).
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// One node of a tree, in a flat vector (children by index).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Node {
    /// Values below `value` on `feature` go left.
    Split {
        feature: u16,
        value: f64,
        left: u32,
        right: u32,
    },
    /// Where isolation stopped, with how many sample points were still together.
    Leaf { size: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    /// Features per point.
    pub dimensions: usize,
    /// Points per tree.
    pub sample_size: usize,
    /// How many points it was trained on.
    pub trained_on: usize,
    /// The seed it was trained with.
    pub seed: u64,
    trees: Vec<Tree>,
}

/// Why a forest could not be trained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    /// Fewer than two points.
    #[error("an isolation forest needs at least two points, got {0}")]
    TooFewPoints(usize),
    /// A value that is not a finite number.
    #[error("point {0} holds a value that is not a finite number")]
    NotFinite(usize),
}

/// The average depth at which an unsuccessful search in a binary search tree of `n` points
/// ends: the normaliser of path lengths (`c(n)` in the paper).
fn average_depth(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        n => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl IsolationForest {
    /// Trains `trees` trees on samples of `sample_size` points (all points when fewer).
    pub fn train<const D: usize>(
        points: &[[f64; D]],
        trees: usize,
        sample_size: usize,
        seed: u64,
    ) -> Result<IsolationForest, TrainError> {
        if points.len() < 2 {
            return Err(TrainError::TooFewPoints(points.len()));
        }
        if let Some(i) = points.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
            return Err(TrainError::NotFinite(i));
        }
        let sample_size = sample_size.clamp(2, points.len());
        let max_depth = (sample_size as f64).log2().ceil() as usize;
        let mut rng = SplitMix64::new(seed);
        let mut indices: Vec<usize> = (0..points.len()).collect();
        let forest = (0..trees.max(1))
            .map(|_| {
                // A partial Fisher-Yates shuffle: the first `sample_size` are the sample.
                for i in 0..sample_size {
                    let j = i + rng.below(indices.len() - i);
                    indices.swap(i, j);
                }
                let mut sample = indices[..sample_size].to_vec();
                build_tree(points, &mut sample, max_depth, &mut rng)
            })
            .collect();
        Ok(IsolationForest {
            dimensions: D,
            sample_size,
            trained_on: points.len(),
            seed,
            trees: forest,
        })
    }

    /// The anomaly score of `point`, in `(0, 1]`: above 0.5 is less usual than the average
    /// point, near 1 is isolated at once. A point of the wrong length scores 0.5 (no opinion).
    pub fn score(&self, point: &[f64]) -> f64 {
        if point.len() != self.dimensions || self.trees.is_empty() {
            return 0.5;
        }
        let total: f64 = self.trees.iter().map(|t| path_length(t, point)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / average_depth(self.sample_size))
    }
}

/// Builds one tree over `sample` (indices into `points`), depth first with an explicit stack.
fn build_tree<const D: usize>(
    points: &[[f64; D]],
    sample: &mut [usize],
    max_depth: usize,
    rng: &mut SplitMix64,
) -> Tree {
    let mut nodes = vec![Node::Leaf { size: 0 }];
    // (node index, range of `sample`, depth)
    let mut stack = vec![(0usize, 0usize, sample.len(), 0usize)];
    while let Some((node, from, to, depth)) = stack.pop() {
        let part = &mut sample[from..to];
        let leaf = Node::Leaf {
            size: part.len() as u32,
        };
        if depth >= max_depth || part.len() <= 1 {
            nodes[node] = leaf;
            continue;
        }
        // A random feature on which the points differ; a few tries, then give up (all equal).
        let mut chosen = None;
        for _ in 0..D * 2 {
            let feature = rng.below(D);
            let (lo, hi) = part.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &i| {
                (lo.min(points[i][feature]), hi.max(points[i][feature]))
            });
            if hi > lo {
                chosen = Some((feature, lo, hi));
                break;
            }
        }
        let Some((feature, lo, hi)) = chosen else {
            nodes[node] = leaf;
            continue;
        };
        let value = lo + rng.next_f64() * (hi - lo);
        // Partition in place: left of `mid` below `value`.
        let mut mid = 0;
        for k in 0..part.len() {
            if points[part[k]][feature] < value {
                part.swap(k, mid);
                mid += 1;
            }
        }
        // `value` is above `lo`, so at least the minimum goes left; `value < hi` keeps the
        // maximum right. Both sides are non-empty.
        let left = nodes.len();
        nodes.push(Node::Leaf { size: 0 });
        nodes.push(Node::Leaf { size: 0 });
        nodes[node] = Node::Split {
            feature: feature as u16,
            value,
            left: left as u32,
            right: left as u32 + 1,
        };
        stack.push((left, from, from + mid, depth + 1));
        stack.push((left + 1, from + mid, to, depth + 1));
    }
    Tree { nodes }
}

fn path_length(tree: &Tree, point: &[f64]) -> f64 {
    let mut index = 0usize;
    let mut depth = 0usize;
    // A tree loaded from disk is not trusted to be acyclic: at most as many steps as nodes.
    for _ in 0..tree.nodes.len() {
        match tree.nodes.get(index) {
            Some(Node::Split {
                feature,
                value,
                left,
                right,
            }) => {
                let v = point.get(*feature as usize).copied().unwrap_or(0.0);
                index = if v < *value { *left } else { *right } as usize;
                depth += 1;
            }
            Some(Node::Leaf { size }) => return depth as f64 + average_depth(*size as usize),
            None => break,
        }
    }
    depth as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(rng: &mut SplitMix64, n: usize) -> Vec<[f64; 2]> {
        (0..n).map(|_| [rng.next_f64(), rng.next_f64()]).collect()
    }

    #[test]
    fn an_outlier_scores_higher_than_the_crowd() {
        let mut rng = SplitMix64::new(1);
        let mut points = cloud(&mut rng, 500);
        points.push([8.0, 8.0]);
        let forest = IsolationForest::train(&points, 100, 256, 7).expect("trained");
        let outlier = forest.score(&[8.0, 8.0]);
        let inlier = forest.score(&[0.5, 0.5]);
        assert!(outlier > 0.7, "outlier {outlier}");
        assert!(inlier < 0.5, "inlier {inlier}");
    }

    #[test]
    fn training_is_reproducible_with_a_seed() {
        let mut rng = SplitMix64::new(2);
        let points = cloud(&mut rng, 300);
        let a = IsolationForest::train(&points, 20, 64, 42).expect("trained");
        let b = IsolationForest::train(&points, 20, 64, 42).expect("trained");
        let c = IsolationForest::train(&points, 20, 64, 43).expect("trained");
        assert_eq!(a, b);
        assert_ne!(a, c);
        // And it survives a round trip through JSON (the saved model).
        let json = serde_json::to_string(&a).expect("serialises");
        let back: IsolationForest = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.score(&[0.1, 0.9]), a.score(&[0.1, 0.9]));
    }

    #[test]
    fn degenerate_input_is_refused_or_harmless() {
        assert_eq!(
            IsolationForest::train::<2>(&[[1.0, 1.0]], 10, 8, 0),
            Err(TrainError::TooFewPoints(1))
        );
        assert_eq!(
            IsolationForest::train(&[[1.0, f64::NAN], [0.0, 0.0]], 10, 8, 0),
            Err(TrainError::NotFinite(0))
        );
        // All points equal: every tree is one leaf, every score the same.
        let same = vec![[3.0, 3.0]; 50];
        let forest = IsolationForest::train(&same, 10, 32, 0).expect("trained");
        assert_eq!(forest.score(&[3.0, 3.0]), forest.score(&[9.0, 9.0]));
        // A point of the wrong length has no opinion.
        assert_eq!(forest.score(&[1.0]), 0.5);
    }
}
