-- repo_stream.mst_root: the atproto MST root CID of a key -> CID set.
-- Expected roots come from the reference implementation (@atproto/repo).

-- the empty tree
SELECT repo_stream.mst_root('{}', '{}');

-- one entry on layer 0, one on layer 2 (atproto interop test vectors)
SELECT repo_stream.mst_root(ARRAY['com.example.record/3jqfcqzm3fo2j'],
       ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])
       = 'bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu' AS layer0_ok;
SELECT repo_stream.mst_root(ARRAY['com.example.record/3jqfcqzm3fx2j'],
       ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])
       = 'bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai' AS layer2_ok;

-- five entries with some depth, given out of order
SELECT repo_stream.mst_root(
       ARRAY['com.example.record/3jqfcqzm4fc2j', 'com.example.record/3jqfcqzm3fr2j',
             'com.example.record/3jqfcqzm3ft2j', 'com.example.record/3jqfcqzm3fp2j',
             'com.example.record/3jqfcqzm3fs2j'],
       array_fill('bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'::text, ARRAY[5]));
-- random-trees.json tree 4 (10 entries); expected root bafyreiggsyanf3jsolqdul3pwoiias4mibxi4hye2n2cgl6zessxv76hwu
CREATE TEMP TABLE tree4 (key text, cid text);
INSERT INTO tree4 VALUES
  ('app.bsky.graph.follow/.PxRY6JqXV', 'bafyreihbrlv3x4iwretnl3yoppksafyq54qeogncjzma2s6qirgvnqbm7e'),
  ('app.bsky.feed.post/mwymfrsr5pprx', 'bafyreidvbfyhnzcbeu4n3j6nahif5fyoctsn7cbqta75cmlrf57ipmzjne'),
  ('app.bsky.graph.follow/pha4anedn2ua2', 'bafyreibzlo5gclkpi2itwcrzrjtjimlwslqsltgwbmhwkaxyqzizun67ru'),
  ('com.example.record/FIiRTh:rCzRia', 'bafyreighh2zs5jkt62vfqhtz5rqeeuxuxsqs2ov7wg7so5eeagvi5fv3hm'),
  ('app.bsky.feed.post/g3sheiufymvlh', 'bafyreidnpyd5xftzlpziakajhbnsply2i7ojgv2kmwl4q4zdgbx47r43fa'),
  ('app.bsky.feed.post/NJnda', 'bafyreihi5yxcr6ogoxrk5hcxkxmt3dvmvdc4unuhy6tztq5kaj6semggpa'),
  ('app.bsky.graph.follow/esnc5yeadje3r', 'bafyreigamh7qzl75afllsuo63qbfmdffcxwiftdnyhy363j2x6hnenaxlm'),
  ('app.bsky.graph.follow/dwuy3cg2eqenz', 'bafyreietmh7v22pa3dx764ufstimbkze526gae7fe7upgj5zzw7ryze4re'),
  ('app.bsky.graph.follow/EQ:U7h', 'bafyreibuconp7ctku67hipup2miqv7hfsfphtei3irfhd7l3vmjlb6g4ha'),
  ('app.bsky.graph.follow/_Lq8GlEq', 'bafyreidkckp7rroka5mwm7opoak6bz6pwnvszitolz3gqlwumvzv4air6y');
SELECT repo_stream.mst_root(array_agg(key), array_agg(cid)) AS root FROM tree4;
-- any input order gives the same root
SELECT repo_stream.mst_root(array_agg(key ORDER BY key DESC), array_agg(cid ORDER BY key DESC)) = 'bafyreiggsyanf3jsolqdul3pwoiias4mibxi4hye2n2cgl6zessxv76hwu' AS reversed_ok FROM tree4;
-- after the deletes: expected bafyreignmcsuy2zw7slk5nzg6gafnw2ppwvcwsp3hhghkqccet6rg35iba
SELECT repo_stream.mst_root(array_agg(key), array_agg(cid)) AS root_after_deletes FROM tree4
  WHERE key <> ALL (ARRAY['app.bsky.graph.follow/.PxRY6JqXV',
      'app.bsky.feed.post/mwymfrsr5pprx',
      'app.bsky.graph.follow/esnc5yeadje3r']);

-- random-trees.json tree 5 (50 entries); expected root bafyreic33ijz7gvvcuulcibf2jdbwnda4hqpwg2brzsokyouehdgdwddci
CREATE TEMP TABLE tree5 (key text, cid text);
INSERT INTO tree5 VALUES
  ('app.bsky.graph.follow/oUGhoPgN', 'bafyreihbrlv3x4iwretnl3yoppksafyq54qeogncjzma2s6qirgvnqbm7e'),
  ('app.bsky.feed.like/lxo3xmb5xbhel', 'bafyreidvbfyhnzcbeu4n3j6nahif5fyoctsn7cbqta75cmlrf57ipmzjne'),
  ('com.example.record/oj744rwrd5fga', 'bafyreibzlo5gclkpi2itwcrzrjtjimlwslqsltgwbmhwkaxyqzizun67ru'),
  ('app.bsky.feed.post/owcjc2u5lwnca', 'bafyreighh2zs5jkt62vfqhtz5rqeeuxuxsqs2ov7wg7so5eeagvi5fv3hm'),
  ('app.bsky.feed.post/ldipueidwv7gy', 'bafyreidnpyd5xftzlpziakajhbnsply2i7ojgv2kmwl4q4zdgbx47r43fa'),
  ('app.bsky.feed.like/mcrenucuplsjs', 'bafyreihi5yxcr6ogoxrk5hcxkxmt3dvmvdc4unuhy6tztq5kaj6semggpa'),
  ('com.example.record/2TDxJ', 'bafyreigamh7qzl75afllsuo63qbfmdffcxwiftdnyhy363j2x6hnenaxlm'),
  ('app.bsky.feed.like/f:IjM-Mth7bR3', 'bafyreietmh7v22pa3dx764ufstimbkze526gae7fe7upgj5zzw7ryze4re'),
  ('com.example.record/ml2nvy6sslylz', 'bafyreibuconp7ctku67hipup2miqv7hfsfphtei3irfhd7l3vmjlb6g4ha'),
  ('app.bsky.feed.like/lwfjfyyjf3n55', 'bafyreidkckp7rroka5mwm7opoak6bz6pwnvszitolz3gqlwumvzv4air6y'),
  ('app.bsky.feed.like/ctqgzeijabkvo', 'bafyreibiynxd3u7u7l6coxjqicqvo6j7xr2z7angoqkvd7q65vdo2awlmu'),
  ('com.example.record/1a3f8R4021', 'bafyreifyziphibjahpock27sajd53suitjnk52ucyb2llrmu6wj2ktyf34'),
  ('app.bsky.feed.like/c4amomvcg7hyd', 'bafyreiaritm5w4ttacxrs6alhah44rhb6glnhrc5y2qjyr6dixn2afcftm'),
  ('app.bsky.graph.follow/FG1GQ', 'bafyreidu4w666jq3bzkyjr7ufgezxbdiuntbgyg7o7dfs7ql7ex4qfxugy'),
  ('com.example.record/fkysypsa4n2kx', 'bafyreidqc2zyqaoqo64ixxauw6ciiliutilhtizkcbbvzm6vvvu7bd55yi'),
  ('app.bsky.graph.follow/cef2mft5o2gpw', 'bafyreieomjenl4b7tdyeab3zo5nt5cypurrlioyd5pjv4zjmwlt6zvntse'),
  ('app.bsky.graph.follow/xJsns8a1yVhxb8c', 'bafyreiageyjt2afun3dpefc4ykvkf3hzeejq2xdzreydyndrh543qzqo5y'),
  ('app.bsky.graph.follow/nuim4kp2cvaro', 'bafyreifls46e7awu2tcl7ch5hswwxorjtt425k5lbtf7etlj2ipmw6m24i'),
  ('app.bsky.feed.like/OmMv3qm_cH7vIYigee', 'bafyreibpkh4waebunhmlwwphdlz5dfkl63vd7nyc5dmfzkaa7mtlbu2e3u'),
  ('app.bsky.feed.post/ccyvp7mmr3vdf', 'bafyreibpcvcx7zk3m6ib3edfvcodcxa6j3bhf6l4sis2sd3frwreh4qi4y'),
  ('com.example.record/fg5r75u3bac5d', 'bafyreidabax6xqef6gazmaoocigz75sz4el5a6sjhneal4v5mwutduzi5q'),
  ('app.bsky.feed.like/ckvi5uakuj7yd', 'bafyreif7pbza2dzrx3vchbt5plns7ixt7zn3lyfsz2wi73eghtfswhr7fu'),
  ('app.bsky.feed.post/pxf6jmiv2zari', 'bafyreifzxrxnsdhfdzt6ldiqx2ze3h76kqlxpqlwvfvpbqdxgb3rjoqtai'),
  ('app.bsky.graph.follow/dhhtjlmlarqbg', 'bafyreigc7ezp2pdimc6obyufjnjeyojebozyxk5h6hwobhqzrej7okhulq'),
  ('app.bsky.graph.follow/IJHyniHeRBvzZkk4S_', 'bafyreigc4eq3a5b3zitpizemvlwux7ukdik35gy2wze3ygdek6xs62er74'),
  ('com.example.record/n7p7mv5hcrnhv', 'bafyreiebfda3iygrtewhrmkzpjcsek6gxggiroscyb5ek3dnolxo3ynutu'),
  ('app.bsky.feed.post/dccldd26mjhtq', 'bafyreifhrwo3s3xti27daxgagvogzxu25t2vggcbxdgti3ddcct6oj3iea'),
  ('app.bsky.graph.follow/ilw3cqont2hrx', 'bafyreibid4lkqfx5xbmflzi2lgrujweshkada6nec5lxajdh3eri3ncjia'),
  ('app.bsky.feed.post/vYTflqnO5v5', 'bafyreidwfsbcspchynzvp2hxkkac34oibtjgqxqpjy6uqszvgwcfbc3xli'),
  ('app.bsky.feed.post/4A.rPWIdT', 'bafyreictr6wbsp5q3c3lx66iph3nrqframyd63wwla7bqgiif7rkpljflq'),
  ('app.bsky.graph.follow/e2auiezmc6zqb', 'bafyreifqbrdefim33fe46hl2obuzzeum3pp3xua6gfioob47lcarrvu7au'),
  ('app.bsky.feed.like/cNAxXS7os', 'bafyreia2fwjy6psqxzwggehvdtyytqgm4rqzbc2iaw5uilwqg7k4rzguo4'),
  ('app.bsky.feed.post/gdjHg3Pi5WWw8YRW', 'bafyreicyxe7duxjj4idnkcp4omdfazylswxkynzvoeq3s5zaw7hpbetc2y'),
  ('com.example.record/bu8JCZ5EYNgWr:A', 'bafyreidcfnxu4hv7gwalqzy7inwhl6ngkpykbsae3wcg6qq7v6gnozzkhe'),
  ('com.example.record/n5unxtz6oqbx4', 'bafyreiclrgxbhyaeqflvsxh5gp6w7q7c3wsq3kjil2mlz5osklr52m4xqu'),
  ('app.bsky.feed.post/~waTJGnNvP72', 'bafyreig6qtoku6ycxjpcuru6x6v3puiefrchdhrrtyvrh4s437ztznsrii'),
  ('app.bsky.graph.follow/ot4ahlgmhacz4', 'bafyreig36nbw6rifkhpjkncv2a4nl7zk6amjhtf5cb4rn4httjdkjfzr4q'),
  ('app.bsky.feed.like/ggudlk72edpyt', 'bafyreiet2tpzeyd7oeepqmqldigq3zdgxlkmzovrratriiedphuvhbtnqy'),
  ('app.bsky.feed.like/oqvwqdkvgmfz4', 'bafyreicufdrky4pnfitjpddyb3u7a2zkvpl2heffuwhiea3c3vbr5e4fim'),
  ('app.bsky.feed.like/nc6fhg4mt6p4c', 'bafyreib2l23lmcdwtkxxvmuqik3mesdx6pwch5dw4gow7z4dlziqkf5d2a'),
  ('app.bsky.graph.follow/nqppugmdjvioo', 'bafyreigszejirh7qj5rz7wvv2n2yq3ooesh4buvqmrdpdh3ssmlawczgmq'),
  ('app.bsky.feed.post/gj422m4rz2mpk', 'bafyreig337o5sjncjclyris2dqqgwyadgigosyfzmmzb72h2rustqekje4'),
  ('com.example.record/jex27q65rjoz2', 'bafyreig7hqz4uigugchdczlkvmbmifbhhtssnzgy6i4hbfchmaxegnt7ui'),
  ('app.bsky.graph.follow/ojxxem3l4yngp', 'bafyreiglcifkdxea6a7foy77t6jxymsdzn2ocw3jkri7yr5dfgn6lzlfgy'),
  ('app.bsky.feed.like/fEwl', 'bafyreihrzpjxnzfdn4adylflh4xp3pxlwviyy42wkn7dxuhbnranx5k5qy'),
  ('app.bsky.graph.follow/eich6ntc5q76u', 'bafyreicb3mhusimgobxkcfy2yg3qx2gw6ngvdgkq47fxruayblyeokmuzm'),
  ('app.bsky.graph.follow/mtifd6dulezj6', 'bafyreiasmhzdrxdghfhspcuhkttqj6ucit4nng7pglnmuczca6cn7igf4m'),
  ('app.bsky.graph.follow/oD_5', 'bafyreieuftcrq4qhwiazmchp3cow6joznkgi36k6z7o27lpiylhgm2a7rm'),
  ('app.bsky.feed.like/gmlhtd2ifqyke', 'bafyreieed63hnh3ttbhvhful2tu6piwq5nsojvfj6cu4lhphz4gj6vubzi'),
  ('com.example.record/cq7y7mhp2ui5d', 'bafyreicf3qmjlvzo2ggyjblu4splcin2hl3jqv5ga7rnkv32tszpkv5wue');
SELECT repo_stream.mst_root(array_agg(key), array_agg(cid)) AS root FROM tree5;
-- any input order gives the same root
SELECT repo_stream.mst_root(array_agg(key ORDER BY key DESC), array_agg(cid ORDER BY key DESC)) = 'bafyreic33ijz7gvvcuulcibf2jdbwnda4hqpwg2brzsokyouehdgdwddci' AS reversed_ok FROM tree5;
-- after the deletes: expected bafyreiexrooe24ycug7miijlvbadgrt3vbaj3tbjstm2uz5ecff3h5c6jq
SELECT repo_stream.mst_root(array_agg(key), array_agg(cid)) AS root_after_deletes FROM tree5
  WHERE key <> ALL (ARRAY['app.bsky.graph.follow/oUGhoPgN',
      'com.example.record/oj744rwrd5fga',
      'app.bsky.feed.post/ldipueidwv7gy',
      'app.bsky.feed.like/c4amomvcg7hyd',
      'app.bsky.graph.follow/IJHyniHeRBvzZkk4S_',
      'com.example.record/n7p7mv5hcrnhv',
      'app.bsky.feed.post/vYTflqnO5v5',
      'com.example.record/n5unxtz6oqbx4',
      'app.bsky.feed.like/oqvwqdkvgmfz4',
      'app.bsky.graph.follow/nqppugmdjvioo',
      'app.bsky.graph.follow/ojxxem3l4yngp',
      'app.bsky.feed.like/fEwl',
      'app.bsky.graph.follow/mtifd6dulezj6',
      'app.bsky.feed.like/gmlhtd2ifqyke']);

-- NULL arrays: STRICT, so NULL
SELECT repo_stream.mst_root(NULL, '{}') IS NULL AS null_in_null_out;

-- errors, each with its SQLSTATE
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

\set VERBOSITY default
-- not collection/rkey
SELECT repo_stream.mst_root(ARRAY['no-slash'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454']);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['a/b/c'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['/rkey'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/has space'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/caf' || chr(233)], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/' || repeat('x', 1006)], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
-- 1024 bytes is the longest key allowed
SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/' || repeat('x', 1005)], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454']) IS NOT NULL AS longest_key_ok;
-- the same key twice
SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a', 'app.bsky.feed.like/b', 'app.bsky.feed.post/a'],
       array_fill('bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'::text, ARRAY[3]));
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a', 'app.bsky.feed.post/a'], array_fill('bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'::text, ARRAY[2]))$$);
-- arrays of different lengths
SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a', 'app.bsky.feed.post/b'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454']);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root('{}', ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'])$$);
-- NULL elements
SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a', NULL], array_fill('bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454'::text, ARRAY[2]));
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a'], ARRAY[NULL::text])$$);
-- invalid CIDs: not base32, wrong version/codec/hash, truncated
SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a'], ARRAY['not-a-cid']);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a'], ARRAY['QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a'], ARRAY['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz45'])$$);
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a'], ARRAY['bafkqaaa'])$$);
-- a raw-codec CID is a fine record value
SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/a'], ARRAY['bafkreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454']) IS NOT NULL AS raw_cid_ok;
-- multi-dimensional arrays
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root(ARRAY[['app.bsky.feed.post/a']], ARRAY[['bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454']])$$);
-- arrays not starting at 1 are reported with their own subscripts
SELECT pg_temp.sqlstate_of($$SELECT repo_stream.mst_root('[5:6]={app.bsky.feed.post/a,app.bsky.feed.post/b}'::text[], '[5:6]={bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454,nope}'::text[])$$);
