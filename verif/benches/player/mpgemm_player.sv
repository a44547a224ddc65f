// Memory-fed wrapper of the generated `mpgemm` core for fast cocotb runs (verif/benches/player/tb.py).
//
// The stimulus beats and the expected result beats (golden model) are loaded with $readmemh from
// the files named by the plusargs +act=, +wgt=, +grp=, +exp= with their counts +n_act=, +n_grp=,
// +n_res=. Every input stream is valid whenever beats remain and the result stream is always
// ready, so the core runs at full rate while cocotb only drives the clock and reset and waits
// for `done`. Each result beat is compared with the expected beat as it is transferred.
// `cycles` counts from the first issued K step to the last result beat, inclusive, like the
// cycle model.
module mpgemm_player #(
    parameter int ACT_W = 8, parameter int WGT_W = 4, parameter int GRP_W = 64, parameter int RES_W = 34,
    parameter int STEP_DEPTH = 65536, parameter int GROUP_DEPTH = 4096, parameter int RESULT_DEPTH = 16384
) (
    input  logic        clk,
    input  logic        rst,
    output logic        done,
    output logic [31:0] mismatches,
    output logic [31:0] first_mismatch,
    output logic [31:0] cycles
);
    logic [ACT_W-1:0] act_mem [STEP_DEPTH];
    logic [WGT_W-1:0] wgt_mem [STEP_DEPTH];
    logic [GRP_W-1:0] grp_mem [GROUP_DEPTH];
    logic [RES_W-1:0] exp_mem [RESULT_DEPTH];
    int n_act, n_grp, n_res;
    string path;

    initial begin
        if (!$value$plusargs("n_act=%d", n_act)) n_act = 0;
        if (!$value$plusargs("n_grp=%d", n_grp)) n_grp = 0;
        if (!$value$plusargs("n_res=%d", n_res)) n_res = 0;
        if ($value$plusargs("act=%s", path)) $readmemh(path, act_mem);
        if ($value$plusargs("wgt=%s", path)) $readmemh(path, wgt_mem);
        if ($value$plusargs("grp=%s", path)) $readmemh(path, grp_mem);
        if ($value$plusargs("exp=%s", path)) $readmemh(path, exp_mem);
    end

    logic [31:0] act_index, grp_index, res_index, cycle, first_issue;
    logic act_ready, wgt_ready, grp_ready, res_valid, started;
    logic [RES_W-1:0] res_payload;
    wire act_valid = act_index < n_act;
    wire grp_valid = grp_index < n_grp;

    mpgemm dut (
        .clk(clk), .rst(rst),
        .act__payload(act_mem[act_index[$clog2(STEP_DEPTH)-1:0]]), .act__valid(act_valid), .act__ready(act_ready),
        .wgt__payload(wgt_mem[act_index[$clog2(STEP_DEPTH)-1:0]]), .wgt__valid(act_valid), .wgt__ready(wgt_ready),
        .grp__payload(grp_mem[grp_index[$clog2(GROUP_DEPTH)-1:0]]), .grp__valid(grp_valid), .grp__ready(grp_ready),
        .res__payload(res_payload), .res__valid(res_valid), .res__ready(1'b1)
    );

    always_ff @(posedge clk) begin
        if (rst) begin
            act_index <= 0; grp_index <= 0; res_index <= 0; cycle <= 0; started <= 0;
            done <= 0; mismatches <= 0; first_mismatch <= 32'hFFFFFFFF; cycles <= 0;
        end else begin
            cycle <= cycle + 1;
            if (act_valid && act_ready) begin
                act_index <= act_index + 1;
                if (!started) begin started <= 1; first_issue <= cycle; end
            end
            if (grp_valid && grp_ready) grp_index <= grp_index + 1;
            if (res_valid) begin
                res_index <= res_index + 1;
                if (res_payload != exp_mem[res_index[$clog2(RESULT_DEPTH)-1:0]]) begin
                    mismatches <= mismatches + 1;
                    if (mismatches == 0) first_mismatch <= res_index;
                end
                if (res_index + 1 == n_res) begin
                    done <= 1;
                    cycles <= cycle - first_issue + 1;
                end
            end
        end
    end
endmodule
