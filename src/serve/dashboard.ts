/**
 * The operator's dashboard: `GET /dashboard` is one self-contained HTML page (inline CSS and script, charts
 * drawn as inline SVG, nothing fetched from elsewhere) that polls `GET /v1/dashboard`, a read route, for
 * everything it shows: the versions with their gate scores, the evolution jobs with their progress, quality
 * over versions, interactions stored per second, and request latency percentiles per route.
 */
import type { IngestRate, Metrics } from './metrics.js';
import type { Evolution, ModelVersion, Storage } from './storage.js';

export interface DashboardVersion {
  id: number;
  parentId: number | null;
  status: ModelVersion['status'];
  trainedUpTo: number;
  createdAt: string;
  activatedAt: string | null;
  note: string | null;
  /** The gate of the evolution that made it (null for a registered version). */
  gate: { before: number | null; after: number | null; samples: number | null; margin: number | null; passed: boolean | null } | null;
  /** Early-stopping score of its evolution (validation NDCG@3). */
  bestValid: number | null;
}

export interface DashboardEvolution {
  id: number;
  status: Evolution['status'];
  baseVersionId: number;
  newVersionId: number | null;
  fromSeq: number;
  toSeq: number;
  stage: string;
  done: number;
  total: number;
  message: string | null;
  lastLog: string | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface QualitySeries {
  name: string;
  points: { version: number; value: number }[];
}

export interface DashboardData {
  generatedAt: string;
  uptimeSeconds: number;
  activeVersion: number;
  evolution: number | null;
  log: { interactions: number; lastSeq: number; users: number; items: number };
  versions: DashboardVersion[];
  evolutions: DashboardEvolution[];
  activations: { versionId: number; at: string; reason: string }[];
  /** NDCG@3 on each evolved version's gate slice: the version itself, its parent on the same targets, and per user group when its metrics hold them. */
  quality: { metric: string; series: QualitySeries[] };
  ingest: IngestRate;
  routes: ReturnType<Metrics['snapshot']>;
  scoring: { workers: number; busy: number; queued: number };
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const obj = (x: unknown): Record<string, unknown> | null => (x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : null);

export function dashboardVersion(v: ModelVersion): DashboardVersion {
  const g = obj(v.metrics.gate);
  return {
    id: v.id,
    parentId: v.parentId,
    status: v.status,
    trainedUpTo: v.trainedUpTo,
    createdAt: v.createdAt,
    activatedAt: v.activatedAt,
    note: v.note,
    gate: g ? { before: num(g.before), after: num(g.after), samples: num(g.samples), margin: num(g.margin), passed: typeof g.passed === 'boolean' ? g.passed : null } : null,
    bestValid: num(v.metrics.bestValid),
  };
}

/**
 * Quality over versions, from the versions' `metrics.gate`: `after` (the version on its gate slice),
 * `before` (its parent on the same slice), and `groups.<name>.after` when the gate has per-group scores.
 */
export function qualitySeries(versions: readonly ModelVersion[]): QualitySeries[] {
  const series = new Map<string, QualitySeries['points']>();
  const add = (name: string, version: number, value: number | null) => {
    if (value === null) return;
    if (!series.has(name)) series.set(name, []);
    series.get(name)!.push({ version, value });
  };
  for (const v of [...versions].sort((a, b) => a.id - b.id)) {
    const g = obj(v.metrics.gate);
    if (!g) continue;
    add('gate: this version', v.id, num(g.after));
    add('gate: its parent', v.id, num(g.before));
    const groups = obj(g.groups);
    for (const [name, s] of Object.entries(groups ?? {}).sort(([a], [b]) => a.localeCompare(b))) add(`${name} users`, v.id, num(obj(s)?.after));
  }
  return [...series].map(([name, points]) => ({ name, points }));
}

export function dashboardEvolution(e: Evolution): DashboardEvolution {
  return {
    id: e.id,
    status: e.status,
    baseVersionId: e.baseVersionId,
    newVersionId: e.newVersionId,
    fromSeq: e.fromSeq,
    toSeq: e.toSeq,
    stage: e.progress.stage,
    done: e.progress.done,
    total: e.progress.total,
    message: e.message,
    lastLog: e.progress.log.at(-1) ?? null,
    startedAt: e.startedAt,
    finishedAt: e.finishedAt,
  };
}

export async function dashboardData(s: {
  storage: Storage;
  metrics: Metrics;
  activeVersion: number;
  evolution: number | null;
  scoring: DashboardData['scoring'];
}): Promise<DashboardData> {
  const { storage, metrics } = s;
  const [versions, evolutions, activations, logState, users, items] = await Promise.all([
    storage.versions(),
    storage.evolutions(),
    storage.activationHistory(),
    storage.logState(),
    storage.userCount(),
    storage.items(),
  ]);
  return {
    generatedAt: new Date().toISOString(),
    uptimeSeconds: (Date.now() - metrics.started) / 1000,
    activeVersion: s.activeVersion,
    evolution: s.evolution,
    log: { interactions: logState.count, lastSeq: logState.lastSeq, users, items: items.length },
    versions: [...versions].sort((a, b) => b.id - a.id).map(dashboardVersion),
    evolutions: [...evolutions].sort((a, b) => b.id - a.id).map(dashboardEvolution),
    activations,
    quality: { metric: 'NDCG@3', series: qualitySeries(versions) },
    ingest: metrics.ingestRate(),
    routes: metrics.snapshot(),
    scoring: s.scoring,
  };
}

/** The page. Its script takes the read token from a `#token=` fragment (never sent to the server) or a prompt, keeps it in sessionStorage, and sends it as a Bearer header. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>evorec dashboard</title><link rel="icon" href="data:,">
<style>
:root{--fg:#1d2330;--mut:#667085;--bg:#f5f6f8;--card:#fff;--line:#e3e6eb;--c0:#2563eb;--c1:#f59e0b;--c2:#16a34a;--c3:#dc2626;--c4:#7c3aed;--c5:#0891b2}
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:24px;align-items:baseline;padding:14px 20px;background:#1d2330;color:#fff}header h1{font-size:18px;margin:0}
header .kv{color:#c9cfdb}header .kv b{color:#fff}#err{color:#fca5a5;margin-left:auto}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px;padding:16px 20px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
section h2{font-size:14px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.04em;color:var(--mut)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);white-space:nowrap}
th{color:var(--mut);font-weight:600}td.note{white-space:normal;color:var(--mut);max-width:260px}td.n{text-align:right;font-variant-numeric:tabular-nums}
.st{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}
.st-active,.st-succeeded{background:#dcfce7;color:#166534}.st-candidate,.st-running{background:#dbeafe;color:#1e40af}
.st-retired,.st-interrupted{background:#eef0f3;color:#475467}.st-rejected,.st-failed{background:#fee2e2;color:#991b1b}
.prog{height:8px;background:#eef0f3;border-radius:4px;overflow:hidden;min-width:90px}.prog>div{height:100%;background:var(--c0)}.wide{grid-column:1/-1}.scroll{overflow-x:auto}
svg{display:block;width:100%;height:auto}svg text{font-size:11px;fill:var(--mut)}.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--mut);margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}.empty{color:var(--mut);font-style:italic;padding:20px 0}
</style></head>
<body>
<header><h1>evorec</h1><span class="kv">active version <b id="h-active">–</b></span><span class="kv">interactions <b id="h-log">–</b></span>
<span class="kv">users <b id="h-users">–</b></span><span class="kv">items <b id="h-items">–</b></span><span class="kv">evolution <b id="h-evo">–</b></span>
<span class="kv">updated <b id="h-time">–</b></span><span id="err"></span></header>
<main>
<section class="wide"><h2>Model versions</h2><div class="scroll"><table id="versions"><thead><tr><th>id</th><th>status</th><th>parent</th><th>trained up to</th><th class="n">gate before</th><th class="n">gate after</th><th>gate</th><th>created</th><th>activated</th><th>note</th></tr></thead><tbody></tbody></table></div></section>
<section class="wide"><h2>Evolution jobs</h2><div class="scroll"><table id="evolutions"><thead><tr><th>id</th><th>status</th><th>base → new</th><th>seq</th><th>stage</th><th>progress</th><th>message</th></tr></thead><tbody></tbody></table></div></section>
<section><h2>Quality over versions (gate <span id="metric">NDCG@3</span>)</h2><div id="quality"></div></section>
<section><h2>Interactions stored per second</h2><div id="ingest"></div></section>
<section class="wide"><h2>Request latency by route (ms)</h2><div id="latency"></div></section>
</main>
<script>
(function(){
'use strict';
var NS='http://www.w3.org/2000/svg', COLORS=['var(--c0)','var(--c1)','var(--c2)','var(--c3)','var(--c4)','var(--c5)'];
var m=/(?:^|[#&])token=([^&]+)/.exec(location.hash);
if(m){sessionStorage.setItem('evorec-token',decodeURIComponent(m[1]));history.replaceState(null,'',location.pathname+location.search);}
function token(){return sessionStorage.getItem('evorec-token');}
function el(tag,attrs,text){var e=document.createElement(tag);for(var k in attrs||{})e.setAttribute(k,attrs[k]);if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
function sv(tag,attrs,text){var e=document.createElementNS(NS,tag);for(var k in attrs||{})e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=String(text);return e;}
function f4(x){return x===null||x===undefined?'–':x.toFixed(4);}
function when(s){return s?s.replace('T',' ').replace(/\\.\\d+Z$/,'Z'):'–';}
function badge(s){return el('span',{'class':'st st-'+s},s);}
function nice(max){if(!(max>0))return 1;var st=max/4,p=Math.pow(10,Math.floor(Math.log10(st))),r=st/p;var m=[1,1.5,2,2.5,3,4,5,6,8,10].filter(function(c){return c>=r-1e-9;})[0];return 4*m*p;}
function legend(names,lines){var d=el('div',{'class':'legend'});names.forEach(function(n,i){var s=el('span');var c=COLORS[i%COLORS.length];
if(lines){var k=sv('svg',{width:22,height:10,viewBox:'0 0 22 10','class':'key'});k.style.display='inline-block';k.style.width='22px';k.style.marginRight='4px';k.appendChild(sv('line',{x1:0,x2:22,y1:5,y2:5,stroke:c,'stroke-width':2.5,'stroke-dasharray':DASH(i)}));s.appendChild(k);}
else{var b=el('i');b.style.background=c;s.appendChild(b);}s.appendChild(document.createTextNode(n));d.appendChild(s);});return d;}
function DASH(i){return i===1?'6 4':i>1?'2 3':'none';}
function frame(id,W,H){var box=document.getElementById(id);box.textContent='';var svg=sv('svg',{viewBox:'0 0 '+W+' '+H,'class':'chart','data-chart':id});box.appendChild(svg);return {box:box,svg:svg};}
function yAxis(svg,L,T,w,h,top,fmt){for(var i=0;i<=4;i++){var y=T+h-h*i/4;svg.appendChild(sv('line',{x1:L,x2:L+w,y1:y,y2:y,stroke:'#e3e6eb'}));svg.appendChild(sv('text',{x:L-6,y:y+4,'text-anchor':'end'},fmt(top*i/4)));}}

function rowsOf(id,rows){var tb=document.querySelector('#'+id+' tbody');tb.textContent='';rows.forEach(function(r){tb.appendChild(r);});if(!rows.length){var tr=el('tr');tr.appendChild(el('td',{colspan:10,'class':'empty'},'none yet'));tb.appendChild(tr);}}
function versions(d){rowsOf('versions',d.versions.map(function(v){var tr=el('tr',{'data-version':v.id});var g=v.gate;
[el('td',{},v.id),null,el('td',{},v.parentId===null?'–':v.parentId),el('td',{'class':'n'},v.trainedUpTo),el('td',{'class':'n'},f4(g&&g.before)),el('td',{'class':'n'},f4(g&&g.after)),
el('td',{},g?(g.passed===null?'–':g.passed?'passed':'failed')+(g.margin!==null?' (margin '+g.margin+')':''):'–'),el('td',{},when(v.createdAt)),el('td',{},when(v.activatedAt)),el('td',{'class':'note'},v.note)]
.forEach(function(td,i){if(i===1){td=el('td');td.appendChild(badge(v.status));}tr.appendChild(td);});return tr;}));}
function evolutions(d){rowsOf('evolutions',d.evolutions.map(function(e){var tr=el('tr',{'data-evolution':e.id});tr.appendChild(el('td',{},e.id));var s=el('td');s.appendChild(badge(e.status));tr.appendChild(s);
tr.appendChild(el('td',{},e.baseVersionId+' → '+(e.newVersionId===null?'…':e.newVersionId)));tr.appendChild(el('td',{},'('+e.fromSeq+', '+e.toSeq+']'));tr.appendChild(el('td',{},e.stage));
var p=el('td');var frac=e.status==='running'?(e.total>0?e.done/e.total:0):1;var bar=el('div',{'class':'prog',title:e.done+' / '+e.total});var fill=el('div');fill.style.width=Math.round(frac*100)+'%';bar.appendChild(fill);p.appendChild(bar);
p.appendChild(el('small',{},e.total>0?e.done+' / '+e.total:''));tr.appendChild(p);tr.appendChild(el('td',{'class':'note'},e.message||e.lastLog||''));return tr;}));}

function quality(d){var q=d.quality,W=560,H=230,L=48,R=12,T=10,B=30,w=W-L-R,h=H-T-B;document.getElementById('metric').textContent=q.metric;var f=frame('quality',W,H);
var vs=[];q.series.forEach(function(s){s.points.forEach(function(p){if(vs.indexOf(p.version)<0)vs.push(p.version);});});vs.sort(function(a,b){return a-b;});
if(!vs.length){f.box.appendChild(el('div',{'class':'empty'},'no evolved version yet: gate scores appear once an evolution has finished'));return;}
var top=0;q.series.forEach(function(s){s.points.forEach(function(p){top=Math.max(top,p.value);});});top=nice(top);
var x=function(v){return vs.length===1?L+w/2:L+w*vs.indexOf(v)/(vs.length-1);},y=function(v){return T+h-h*v/top;};
yAxis(f.svg,L,T,w,h,top,function(v){return +v.toFixed(3)+'';});var stat={};d.versions.forEach(function(v){stat[v.id]=v.status;});vs.forEach(function(v,i){f.svg.appendChild(sv('text',{x:x(v),y:H-10,'text-anchor':vs.length===1?'middle':i===0?'start':i===vs.length-1?'end':'middle'},'v'+v+(stat[v]&&stat[v]!=='retired'?' ('+stat[v]+')':'')));});
var layer=sv('g');f.svg.appendChild(layer);q.series.forEach(function(s,i){var c=COLORS[i%COLORS.length];var dd=s.points.map(function(p,j){return (j?'L':'M')+x(p.version).toFixed(1)+' '+y(p.value).toFixed(1);}).join(' ');
var g=sv('g');layer.insertBefore(g,layer.firstChild);f.svg=g;
f.svg.appendChild(sv('path',{d:dd,fill:'none',stroke:c,'stroke-width':i?1.75:2.5,'stroke-dasharray':DASH(i),'class':'series','data-series':s.name}));
s.points.forEach(function(p){var pt=sv('circle',{cx:x(p.version),cy:y(p.value),r:3.5,fill:c,'class':'point'});pt.appendChild(sv('title',{},s.name+', version '+p.version+': '+p.value.toFixed(4)));f.svg.appendChild(pt);});});
f.box.appendChild(legend(q.series.map(function(s){return s.name;}),true));}

function ingest(d){var g=d.ingest,W=560,H=200,L=48,R=12,T=10,B=30,w=W-L-R,h=H-T-B;var f=frame('ingest',W,H);var rates=g.buckets.map(function(b){return b.count/g.bucketSeconds;});
var top=nice(Math.max.apply(null,rates.concat([0])));yAxis(f.svg,L,T,w,h,top,function(v){return +v.toFixed(2)+'';});var bw=w/rates.length;
rates.forEach(function(r,i){var bh=h*r/top;var rc=sv('rect',{x:(L+i*bw+1).toFixed(1),y:(T+h-bh).toFixed(1),width:Math.max(1,bw-2).toFixed(1),height:bh.toFixed(1),fill:'var(--c0)','class':'bar'});
rc.appendChild(sv('title',{},new Date(g.buckets[i].t*1000).toISOString().slice(11,19)+': '+g.buckets[i].count+' interactions'));f.svg.appendChild(rc);});
[[0,'-'+Math.round(rates.length*g.bucketSeconds/60)+' min'],[rates.length-1,'now']].forEach(function(a){f.svg.appendChild(sv('text',{x:L+a[0]*bw+bw/2,y:H-10,'text-anchor':a[0]?'end':'start'},a[1]));});
f.box.appendChild(el('div',{'class':'legend'},'last minute: '+g.perSecond+' /s; '+g.total+' stored through this process since it started; '+g.bucketSeconds+'-second buckets'));}

function latency(d){var names=Object.keys(d.routes),W=1200,L=280,R=40,T=6,row=24,H=T+row*Math.max(1,names.length)+22,w=W-L-R;var f=frame('latency',W,H);
if(!names.length){f.box.appendChild(el('div',{'class':'empty'},'no requests yet'));return;}var ks=['p50','p95','p99'];
var top=nice(Math.max.apply(null,names.map(function(n){return d.routes[n].latencyMs.p99;}).concat([0.001])));
for(var i=0;i<=4;i++){var gx=L+w*i/4;f.svg.appendChild(sv('line',{x1:gx,x2:gx,y1:T,y2:H-18,stroke:'#e3e6eb'}));f.svg.appendChild(sv('text',{x:gx,y:H-5,'text-anchor':'middle'},+(top*i/4).toPrecision(3)));}
names.forEach(function(n,j){var r=d.routes[n],y0=T+j*row;f.svg.appendChild(sv('text',{x:L-6,y:y0+row/2+4,'text-anchor':'end'},n+' ('+r.count+')'));
ks.forEach(function(k,i){var v=r.latencyMs[k];var rc=sv('rect',{x:L,y:(y0+3+i*6.5).toFixed(1),width:Math.max(0.5,w*v/top).toFixed(1),height:6,fill:COLORS[i],'class':'bar','data-route':n,'data-p':k});rc.appendChild(sv('title',{},n+' '+k+': '+v+' ms'));f.svg.appendChild(rc);});});
f.box.appendChild(legend(['p50','p95','p99']));f.box.lastChild.appendChild(el('span',{},'over the last 4096 requests of each route, this process'));}

function render(d){document.getElementById('h-active').textContent='v'+d.activeVersion;document.getElementById('h-log').textContent=d.log.interactions+' (seq '+d.log.lastSeq+')';
document.getElementById('h-users').textContent=d.log.users;document.getElementById('h-items').textContent=d.log.items;document.getElementById('h-evo').textContent=d.evolution===null?'none running':'#'+d.evolution+' running';
document.getElementById('h-time').textContent=d.generatedAt.slice(11,19)+'Z';versions(d);evolutions(d);quality(d);ingest(d);latency(d);document.body.setAttribute('data-rendered',String(+(document.body.getAttribute('data-rendered')||0)+1));}
var err=document.getElementById('err'),stopped=false;
function poll(){var t=token();var h=t?{authorization:'Bearer '+t}:{};fetch('v1/dashboard',{headers:h,cache:'no-store'}).then(function(r){
if(r.status===401||r.status===403){var n=window.prompt('evorec read token (the dashboard data needs a read or write token)');if(n){sessionStorage.setItem('evorec-token',n.trim());return poll();}sessionStorage.removeItem('evorec-token');err.textContent='no token: open /dashboard#token=<read token>, or reload to be asked';stopped=true;return;}
if(!r.ok)throw new Error('HTTP '+r.status);return r.json().then(function(d){err.textContent='';render(d);});}).catch(function(e){err.textContent='update failed: '+e.message;}).then(function(){clearTimeout(poll.t);if(!stopped)poll.t=setTimeout(poll,3000);});}
poll();
})();
</script>
</body></html>
`;
